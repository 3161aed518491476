//! Crons declared in the registry: `sync_crons` creates, keeps and deletes
//! their state, and scheduler ticks fire each cron exactly once per period
//! at the test clock's time (interval and cron-expression schedules).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Env, T0_MS, add_helpers, json};
use runtime::{CronSchedule, FunctionDef, Registry, Visibility};
use serde::Deserialize;
use serde_json::json;
use values::{Value, v};

#[derive(Deserialize)]
struct NameArgs {
    name: String,
}

#[derive(Deserialize)]
struct CountArgs {
    count: usize,
}

#[derive(Default)]
struct Probes {
    interval: AtomicUsize,
    expr: AtomicUsize,
}

const MINUTE: u64 = 60_000;

fn registry(p: &Arc<Probes>, with_expr: bool) -> Registry {
    let mut r = Registry::new();
    add_helpers(&mut r);
    let probes = Arc::clone(p);
    r.register(
        FunctionDef::new("crons:bump", Visibility::Internal)
            .args(v::object([("name", v::string())]))
            .mutation(move |ctx, a: NameArgs| {
                let p = Arc::clone(&probes);
                async move {
                    match a.name.as_str() {
                        "interval" => p.interval.fetch_add(1, Ordering::SeqCst),
                        _ => p.expr.fetch_add(1, Ordering::SeqCst),
                    };
                    ctx.db.insert("effects", json!({ "tag": a.name })).await?;
                    Ok(Value::Null)
                }
            }),
    );
    r.register(
        FunctionDef::new("crons:seedSessionRequests", Visibility::Internal)
            .args(v::object([("count", v::number())]))
            .mutation(|ctx, a: CountArgs| async move {
                let db = ctx.db.system_writer();
                for i in 0..a.count {
                    db.insert(
                        "_session_requests",
                        json!({ "sessionId": "seed", "requestId": i, "result": null, "logLines": [] }),
                    )
                    .await?;
                }
                Ok(Value::Null)
            }),
    );
    r.cron(
        "every minute",
        CronSchedule::Interval(Duration::from_secs(60)),
        "crons:bump",
        json(json!({ "name": "interval" })),
    );
    if with_expr {
        r.cron(
            "every five minutes",
            CronSchedule::parse("0 */5 * * * *").expect("valid cron expression"),
            "crons:bump",
            json(json!({ "name": "expr" })),
        );
    }
    r
}

/// `(name, nextRun)` of every cron state document, sorted by name.
/// The state of the crons these tests declare (the runtime's own hourly
/// `_system.*` cleanup crons are left out).
async fn cron_state(env: &Env) -> Vec<(String, f64)> {
    let mut v: Vec<_> = env
        .docs("_cron_jobs")
        .await
        .into_iter()
        .filter(|d| {
            !d["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with("_system.")
        })
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_owned(),
                d["nextRun"].as_f64().unwrap(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

async fn effects(env: &Env, tag: &str) -> usize {
    env.docs("effects")
        .await
        .iter()
        .filter(|d| d["tag"] == tag)
        .count()
}

#[tokio::test]
async fn sync_crons_creates_state_once() {
    let probes = Arc::new(Probes::default());
    let env = Env::new(registry(&probes, true)).await;
    assert!(cron_state(&env).await.is_empty());
    env.rt.sync_crons().await.unwrap();
    let expected = vec![
        ("every five minutes".to_owned(), (T0_MS + 5 * MINUTE) as f64),
        ("every minute".to_owned(), (T0_MS + MINUTE) as f64),
    ];
    assert_eq!(cron_state(&env).await, expected);
    // Syncing again (e.g. on the next start) neither duplicates nor resets.
    env.clock.advance_ms(30_000);
    env.rt.sync_crons().await.unwrap();
    assert_eq!(cron_state(&env).await, expected);
}

#[tokio::test]
async fn crons_fire_once_per_period() {
    let probes = Arc::new(Probes::default());
    let env = Env::new(registry(&probes, true)).await;
    env.rt.sync_crons().await.unwrap();

    // Nothing is due at the start.
    let report = env.rt.scheduler_tick(true).await.unwrap();
    assert_eq!(report.crons_fired, 0);

    for minute in 1..=10u64 {
        env.clock.advance_ms(MINUTE);
        let first = env.rt.scheduler_tick(true).await.unwrap();
        let second = env.rt.scheduler_tick(true).await.unwrap();
        let expected_fired = if minute % 5 == 0 { 2 } else { 1 };
        assert_eq!(first.crons_fired, expected_fired, "minute {minute}");
        assert_eq!(first.jobs_started, expected_fired, "minute {minute}");
        assert_eq!(second.crons_fired, 0, "minute {minute}: a second tick");
        assert_eq!(second.jobs_started, 0, "minute {minute}: a second tick");
        assert_eq!(probes.interval.load(Ordering::SeqCst), minute as usize);
        assert_eq!(probes.expr.load(Ordering::SeqCst), (minute / 5) as usize);
    }
    assert_eq!(effects(&env, "interval").await, 10);
    assert_eq!(effects(&env, "expr").await, 2);
    assert_eq!(
        cron_state(&env).await,
        vec![
            (
                "every five minutes".to_owned(),
                (T0_MS + 15 * MINUTE) as f64
            ),
            ("every minute".to_owned(), (T0_MS + 11 * MINUTE) as f64),
        ]
    );
    // Each firing left a finished job tagged with its cron.
    let jobs = env.docs("_scheduled_functions").await;
    assert_eq!(jobs.len(), 12);
    assert!(jobs.iter().all(|j| j["state"] == "success"), "{jobs:?}");
    assert_eq!(
        jobs.iter().filter(|j| j["cron"] == "every minute").count(),
        10
    );
}

#[tokio::test]
async fn a_late_tick_fires_a_missed_cron_once() {
    let probes = Arc::new(Probes::default());
    let env = Env::new(registry(&probes, false)).await;
    env.rt.sync_crons().await.unwrap();
    // The server was down for ten periods: one catch-up run, not ten.
    env.clock.advance_ms(10 * MINUTE + 1);
    let report = env.rt.scheduler_tick(true).await.unwrap();
    assert_eq!(report.crons_fired, 1);
    assert_eq!(env.rt.scheduler_tick(true).await.unwrap().crons_fired, 0);
    assert_eq!(probes.interval.load(Ordering::SeqCst), 1);
    assert_eq!(
        cron_state(&env).await,
        vec![("every minute".to_owned(), (T0_MS + 11 * MINUTE + 1) as f64)]
    );
}

#[tokio::test]
async fn a_removed_cron_loses_its_state_and_stops_firing() {
    let probes = Arc::new(Probes::default());
    let env = Env::new(registry(&probes, true)).await;
    env.rt.sync_crons().await.unwrap();
    assert_eq!(cron_state(&env).await.len(), 2);

    // A new deployment without the five-minute cron, on the same database.
    let rt2 = runtime::Runtime::new(
        env.rt.database().clone(),
        registry(&probes, false),
        runtime::RuntimeConfig::default(),
    );
    rt2.sync_crons().await.unwrap();
    assert_eq!(
        cron_state(&env).await,
        vec![("every minute".to_owned(), (T0_MS + MINUTE) as f64)],
        "the remaining cron keeps its schedule"
    );
    env.clock.advance_ms(5 * MINUTE);
    let report = rt2.scheduler_tick(true).await.unwrap();
    assert_eq!(report.crons_fired, 1);
    assert_eq!(probes.expr.load(Ordering::SeqCst), 0);
    assert_eq!(probes.interval.load(Ordering::SeqCst), 1);
}

/// More old records than one cleanup run deletes: the run that deleted a
/// full batch schedules the next at once, so the backlog drains within a
/// few scheduler ticks instead of 2,000 records per hour.
#[tokio::test]
async fn a_session_request_backlog_larger_than_one_batch_drains_at_once() {
    let probes = Arc::new(Probes::default());
    let env = Env::new(registry(&probes, false)).await;
    env.rt.sync_crons().await.unwrap();
    let seed = env
        .rt
        .registry()
        .get("crons:seedSessionRequests")
        .cloned()
        .unwrap();
    let total = runtime::CLEANUP_BATCH * 2 + 500;
    env.rt
        .run_mutation(&seed, json(json!({ "count": total })), None, None)
        .await
        .result
        .unwrap();
    assert_eq!(env.count("_session_requests").await, total);
    env.clock.advance_ms(15 * 24 * 3600 * 1000);
    let mut ticks = 0;
    while env.count("_session_requests").await > 0 {
        ticks += 1;
        assert!(ticks <= 6, "still not drained after {ticks} ticks");
        env.rt.scheduler_tick(true).await.unwrap();
    }
    // One batch per run: the cron's run and two follow-ups.
    assert!(ticks >= 3, "drained in {ticks} ticks");
}

#[tokio::test]
async fn system_cleanup_crons_remove_old_session_requests_and_finished_jobs() {
    let probes = Arc::new(Probes::default());
    let env = Env::new(registry(&probes, false)).await;
    env.rt.sync_crons().await.unwrap();
    // A stored WebSocket mutation result (a mutation run with a session request id).
    let bump = env.rt.registry().get("crons:bump").cloned().unwrap();
    let session = runtime::SessionRequest {
        session_id: "s1".into(),
        socket: runtime::SessionSocket::Later,
        request_id: 1,
        start_by: None,
    };
    let out = env
        .rt
        .run_mutation(
            &bump,
            json(json!({ "name": "interval" })),
            None,
            Some(session),
        )
        .await;
    out.result.unwrap();
    // A finished job: the minute cron fires once.
    env.clock.advance_ms(MINUTE + 1);
    env.rt.scheduler_tick(true).await.unwrap();
    assert_eq!(env.count("_session_requests").await, 1);
    let first_job_time = env.docs("_scheduled_functions").await[0]["scheduledTime"]
        .as_f64()
        .unwrap();
    // Days later the hourly cleanups have removed the old record and job
    // (the minute cron keeps adding fresh jobs, which must stay).
    for _ in 0..4 {
        env.clock.advance_ms(4 * 24 * 3600 * 1000);
        env.rt.scheduler_tick(true).await.unwrap();
        env.rt.scheduler_tick(true).await.unwrap();
    }
    assert_eq!(env.count("_session_requests").await, 0);
    let jobs = env.docs("_scheduled_functions").await;
    assert!(!jobs.is_empty());
    assert!(
        jobs.iter()
            .all(|j| j["scheduledTime"].as_f64().unwrap() > first_job_time),
        "the first finished job is still there: {jobs:?}"
    );
}
