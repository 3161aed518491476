//! The durable scheduler: jobs are part of the scheduling mutation's
//! transaction, scheduled mutations run exactly once (also with concurrent
//! runners and across restarts), failures and cancellations are recorded,
//! scheduled actions follow their retry policy, interrupted actions are
//! recovered, and scheduling an unknown function is refused.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Env, T0_MS, add_helpers, expect_err, id_of};
use errors::{Error, ErrorCode};
use runtime::{FunctionDef, JobId, JobState, JobStatus, Registry, RetryPolicy, Visibility};
use serde::Deserialize;
use serde_json::json;
use values::{Value, v};

#[derive(Default)]
struct Probes {
    work: AtomicUsize,
    fail: AtomicUsize,
    once_action: AtomicUsize,
    flaky: AtomicUsize,
    always_fails: AtomicUsize,
    ok_action: AtomicUsize,
    ok_retry: AtomicUsize,
}

#[derive(Deserialize)]
struct TagArgs {
    tag: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleArgs {
    name: String,
    delay_ms: f64,
    args: serde_json::Value,
    #[serde(default)]
    fail_after: bool,
}

#[derive(Deserialize)]
struct IdArgs {
    id: String,
}

#[derive(Deserialize)]
struct Empty {}

const RETRY3: RetryPolicy = RetryPolicy::Retry {
    max_attempts: 3,
    initial_backoff: Duration::from_millis(1000),
};

fn registry(p: &Arc<Probes>) -> Registry {
    let mut r = Registry::new();
    add_helpers(&mut r);
    let probes = Arc::clone(p);
    r.register(
        FunctionDef::new("jobs:work", Visibility::Internal)
            .args(v::object([("tag", v::string())]))
            .mutation(move |ctx, a: TagArgs| {
                let p = Arc::clone(&probes);
                async move {
                    p.work.fetch_add(1, Ordering::SeqCst);
                    ctx.db.insert("effects", json!({ "tag": a.tag })).await?;
                    Ok(Value::Null)
                }
            }),
    );
    let probes = Arc::clone(p);
    r.register(
        FunctionDef::new("jobs:fail", Visibility::Internal).mutation(move |ctx, _: Empty| {
            let p = Arc::clone(&probes);
            async move {
                p.fail.fetch_add(1, Ordering::SeqCst);
                ctx.db.insert("effects", json!({ "tag": "fail" })).await?;
                Err::<Value, _>(Error::not_found("boom: the meeting is gone"))
            }
        }),
    );
    r.register(
        FunctionDef::new("jobs:schedule", Visibility::Public)
            .args(v::object([
                ("name", v::string()),
                ("delayMs", v::number()),
                ("args", v::any()),
                ("failAfter", v::optional(v::boolean())),
            ]))
            .mutation(|ctx, a: ScheduleArgs| async move {
                let id = ctx
                    .scheduler
                    .run_after(Duration::from_millis(a.delay_ms as u64), &a.name, a.args)
                    .await?;
                if a.fail_after {
                    return Err(Error::conflict("failing after scheduling"));
                }
                Ok(id.encode())
            }),
    );
    r.register(
        FunctionDef::new("jobs:cancel", Visibility::Public)
            .args(v::object([("id", v::string())]))
            .mutation(|ctx, a: IdArgs| async move {
                let id = ctx
                    .db
                    .normalize_id("_scheduled_functions", &a.id)
                    .await
                    .ok_or_else(|| Error::validation("bad job id"))?;
                ctx.scheduler.cancel(id).await?;
                Ok(Value::Null)
            }),
    );
    r.register(
        FunctionDef::new("jobs:aQuery", Visibility::Internal)
            .query(|_ctx, _: Empty| async move { Ok(Value::Null) }),
    );
    let probes = Arc::clone(p);
    r.register(
        FunctionDef::new("jobs:onceAction", Visibility::Internal)
            .retry(RetryPolicy::AtMostOnce)
            .action(move |_ctx, _: Empty| {
                let p = Arc::clone(&probes);
                async move {
                    p.once_action.fetch_add(1, Ordering::SeqCst);
                    Err::<Value, _>(Error::app(ErrorCode::ExternalServiceError, "upstream down"))
                }
            }),
    );
    let probes = Arc::clone(p);
    r.register(
        FunctionDef::new("jobs:flaky", Visibility::Internal)
            .retry(RETRY3)
            .action(move |_ctx, _: Empty| {
                let p = Arc::clone(&probes);
                async move {
                    let n = p.flaky.fetch_add(1, Ordering::SeqCst) + 1;
                    if n < 3 {
                        return Err(Error::app(
                            ErrorCode::ExternalServiceTimeout,
                            format!("attempt {n} timed out"),
                        ));
                    }
                    Ok(Value::Null)
                }
            }),
    );
    let probes = Arc::clone(p);
    r.register(
        FunctionDef::new("jobs:alwaysFails", Visibility::Internal)
            .retry(RETRY3)
            .action(move |_ctx, _: Empty| {
                let p = Arc::clone(&probes);
                async move {
                    let n = p.always_fails.fetch_add(1, Ordering::SeqCst) + 1;
                    Err::<Value, _>(Error::app(
                        ErrorCode::ExternalServiceError,
                        format!("failure {n}"),
                    ))
                }
            }),
    );
    let probes = Arc::clone(p);
    r.register(
        FunctionDef::new("jobs:okAction", Visibility::Internal).action(move |ctx, _: Empty| {
            let p = Arc::clone(&probes);
            async move {
                p.ok_action.fetch_add(1, Ordering::SeqCst);
                ctx.run_mutation::<Value>("jobs:work", json!({ "tag": "from-action" }))
                    .await?;
                Ok(Value::Null)
            }
        }),
    );
    let probes = Arc::clone(p);
    r.register(
        FunctionDef::new("jobs:okRetry", Visibility::Internal)
            .retry(RETRY3)
            .action(move |_ctx, _: Empty| {
                let p = Arc::clone(&probes);
                async move {
                    p.ok_retry.fetch_add(1, Ordering::SeqCst);
                    Ok(Value::Null)
                }
            }),
    );
    r
}

async fn setup() -> (Env, Arc<Probes>) {
    let probes = Arc::new(Probes::default());
    (Env::new(registry(&probes)).await, probes)
}

async fn schedule(env: &Env, name: &str, delay_ms: u64, args: serde_json::Value) -> JobId {
    let v = env
        .mutation(
            "jobs:schedule",
            json!({ "name": name, "delayMs": delay_ms, "args": args }),
        )
        .await
        .unwrap_or_else(|e| panic!("scheduling {name}: {e}"));
    id_of(&v)
}

async fn status(env: &Env, job: JobId) -> JobStatus {
    env.rt
        .job_status(job)
        .await
        .unwrap()
        .expect("job document exists")
}

async fn effects(env: &Env, tag: &str) -> usize {
    env.docs("effects")
        .await
        .iter()
        .filter(|d| d["tag"] == tag)
        .count()
}

fn now(env: &Env) -> f64 {
    use database::Clock;
    env.clock.now_ms()
}

#[tokio::test]
async fn a_job_scheduled_by_a_failed_mutation_does_not_exist() {
    let (env, probes) = setup().await;
    let r = env
        .mutation(
            "jobs:schedule",
            json!({ "name": "jobs:work", "delayMs": 0, "args": { "tag": "w" }, "failAfter": true }),
        )
        .await;
    expect_err(r, ErrorCode::Conflict);
    assert_eq!(env.count("_scheduled_functions").await, 0);
    env.clock.advance_ms(10_000);
    let report = env.rt.scheduler_tick(true).await.unwrap();
    assert_eq!(report.jobs_started, 0);
    assert_eq!(probes.work.load(Ordering::SeqCst), 0);
    assert_eq!(env.count("effects").await, 0);
}

#[tokio::test]
async fn a_committed_job_runs_once_when_due() {
    let (env, probes) = setup().await;
    let job = schedule(&env, "jobs:work", 5_000, json!({ "tag": "w" })).await;
    let s = status(&env, job).await;
    assert_eq!(s.name, "jobs:work");
    assert_eq!(s.state, JobState::Pending);
    assert_eq!(s.scheduled_time, (T0_MS + 5_000) as f64);
    assert_eq!(s.attempts, 0);

    // Not due yet.
    assert_eq!(env.rt.scheduler_tick(true).await.unwrap().jobs_started, 0);
    env.clock.advance_ms(4_999);
    assert_eq!(env.rt.scheduler_tick(true).await.unwrap().jobs_started, 0);
    assert_eq!(status(&env, job).await.state, JobState::Pending);
    assert_eq!(effects(&env, "w").await, 0);

    // Due.
    env.clock.advance_ms(1);
    assert_eq!(env.rt.scheduler_tick(true).await.unwrap().jobs_started, 1);
    assert_eq!(effects(&env, "w").await, 1);
    assert_eq!(probes.work.load(Ordering::SeqCst), 1);
    let s = status(&env, job).await;
    assert_eq!(s.state, JobState::Success);
    assert_eq!(s.attempts, 1);
    assert_eq!(s.error, None);

    // Ticking again (same time, later) does not re-run it.
    assert_eq!(env.rt.scheduler_tick(true).await.unwrap().jobs_started, 0);
    env.clock.advance_ms(60_000);
    assert_eq!(env.rt.scheduler_tick(true).await.unwrap().jobs_started, 0);
    assert_eq!(effects(&env, "w").await, 1);
    assert_eq!(probes.work.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ticks_run_a_due_job_once() {
    let (env, probes) = setup().await;
    let mutation_job = schedule(&env, "jobs:work", 100, json!({ "tag": "w" })).await;
    let action_job = schedule(&env, "jobs:okAction", 100, json!({})).await;
    env.clock.advance_ms(100);
    let (a, b) = tokio::join!(env.rt.scheduler_tick(true), env.rt.scheduler_tick(true));
    a.unwrap();
    b.unwrap();
    // The mutation handler may have executed in both runners, but only one
    // transaction (the one that moved the job to success) committed.
    assert_eq!(effects(&env, "w").await, 1);
    assert_eq!(effects(&env, "from-action").await, 1);
    assert_eq!(
        probes.ok_action.load(Ordering::SeqCst),
        1,
        "action claimed once"
    );
    let s = status(&env, mutation_job).await;
    assert_eq!((s.state, s.attempts), (JobState::Success, 1));
    let s = status(&env, action_job).await;
    assert_eq!((s.state, s.attempts), (JobState::Success, 1));
}

#[tokio::test]
async fn jobs_survive_a_restart() {
    let (env, probes) = setup().await;
    let job = schedule(&env, "jobs:work", 30_000, json!({ "tag": "durable" })).await;
    let env = env.restart(registry(&probes)).await;
    assert_eq!(status(&env, job).await.state, JobState::Pending);
    env.clock.advance_ms(30_000);
    assert_eq!(env.rt.scheduler_tick(true).await.unwrap().jobs_started, 1);
    assert_eq!(effects(&env, "durable").await, 1);
    assert_eq!(status(&env, job).await.state, JobState::Success);
    // And the finished state is durable too.
    let env = env.restart(registry(&probes)).await;
    assert_eq!(env.rt.scheduler_tick(true).await.unwrap().jobs_started, 0);
    assert_eq!(status(&env, job).await.state, JobState::Success);
    assert_eq!(probes.work.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failing_scheduled_mutation_is_marked_failed() {
    let (env, probes) = setup().await;
    let job = schedule(&env, "jobs:fail", 0, json!({})).await;
    env.rt.scheduler_tick(true).await.unwrap();
    let s = status(&env, job).await;
    assert_eq!(s.state, JobState::Failed);
    assert_eq!(s.error.as_deref(), Some("boom: the meeting is gone"));
    assert_eq!(s.attempts, 1, "a failed run counts as an attempt");
    assert_eq!(effects(&env, "fail").await, 0, "its writes rolled back");
    env.clock.advance_ms(60_000);
    env.rt.scheduler_tick(true).await.unwrap();
    assert_eq!(probes.fail.load(Ordering::SeqCst), 1, "not retried");
}

#[tokio::test]
async fn a_canceled_job_never_runs() {
    let (env, probes) = setup().await;
    let job = schedule(&env, "jobs:work", 1_000, json!({ "tag": "c" })).await;
    env.mutation("jobs:cancel", json!({ "id": job.encode() }))
        .await
        .unwrap();
    assert_eq!(status(&env, job).await.state, JobState::Canceled);
    env.clock.advance_ms(5_000);
    assert_eq!(env.rt.scheduler_tick(true).await.unwrap().jobs_started, 0);
    assert_eq!(probes.work.load(Ordering::SeqCst), 0);
    assert_eq!(effects(&env, "c").await, 0);
    assert_eq!(status(&env, job).await.state, JobState::Canceled);

    // Canceling a finished job changes nothing.
    let done = schedule(&env, "jobs:work", 0, json!({ "tag": "d" })).await;
    env.rt.scheduler_tick(true).await.unwrap();
    env.mutation("jobs:cancel", json!({ "id": done.encode() }))
        .await
        .unwrap();
    assert_eq!(status(&env, done).await.state, JobState::Success);
}

#[tokio::test]
async fn an_at_most_once_action_fails_after_one_attempt() {
    let (env, probes) = setup().await;
    let job = schedule(&env, "jobs:onceAction", 0, json!({})).await;
    assert_eq!(env.rt.scheduler_tick(true).await.unwrap().jobs_started, 1);
    let s = status(&env, job).await;
    assert_eq!(s.state, JobState::Failed);
    assert_eq!(s.attempts, 1);
    assert_eq!(s.error.as_deref(), Some("upstream down"));
    env.clock.advance_ms(3_600_000);
    assert_eq!(env.rt.scheduler_tick(true).await.unwrap().jobs_started, 0);
    assert_eq!(probes.once_action.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_retrying_action_backs_off_until_it_succeeds() {
    let (env, probes) = setup().await;
    let job = schedule(&env, "jobs:flaky", 0, json!({})).await;

    // Attempt 1 fails: back to pending, 1 s later.
    env.rt.scheduler_tick(true).await.unwrap();
    let s = status(&env, job).await;
    assert_eq!(s.state, JobState::Pending);
    assert_eq!(s.attempts, 1);
    assert_eq!(s.scheduled_time, now(&env) + 1_000.0);
    assert_eq!(s.error.as_deref(), Some("attempt 1 timed out"));

    // Not before its new time.
    env.rt.scheduler_tick(true).await.unwrap();
    env.clock.advance_ms(999);
    env.rt.scheduler_tick(true).await.unwrap();
    assert_eq!(probes.flaky.load(Ordering::SeqCst), 1);

    // Attempt 2 fails: pending again, backoff doubled.
    env.clock.advance_ms(1);
    env.rt.scheduler_tick(true).await.unwrap();
    let s = status(&env, job).await;
    assert_eq!((s.state, s.attempts), (JobState::Pending, 2));
    assert_eq!(s.scheduled_time, now(&env) + 2_000.0);
    assert_eq!(probes.flaky.load(Ordering::SeqCst), 2);

    // Attempt 3 succeeds.
    env.clock.advance_ms(2_000);
    env.rt.scheduler_tick(true).await.unwrap();
    let s = status(&env, job).await;
    assert_eq!((s.state, s.attempts), (JobState::Success, 3));
    assert_eq!(probes.flaky.load(Ordering::SeqCst), 3);
    env.clock.advance_ms(60_000);
    env.rt.scheduler_tick(true).await.unwrap();
    assert_eq!(probes.flaky.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_retrying_action_gives_up_after_max_attempts() {
    let (env, probes) = setup().await;
    let job = schedule(&env, "jobs:alwaysFails", 0, json!({})).await;
    for _ in 0..10 {
        env.rt.scheduler_tick(true).await.unwrap();
        env.clock.advance_ms(10_000);
    }
    let s = status(&env, job).await;
    assert_eq!(s.state, JobState::Failed);
    assert_eq!(s.attempts, 3);
    assert_eq!(s.error.as_deref(), Some("failure 3"));
    assert_eq!(probes.always_fails.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn interrupted_actions_are_recovered_according_to_their_policy() {
    let (env, probes) = setup().await;
    let once = schedule(&env, "jobs:onceAction", 60_000, json!({})).await;
    let retry = schedule(&env, "jobs:okRetry", 60_000, json!({})).await;
    let untouched = schedule(&env, "jobs:work", 60_000, json!({ "tag": "u" })).await;
    // Simulate a crash while both actions were running (claimed, attempt 1).
    for job in [once, retry] {
        env.patch(
            "_scheduled_functions",
            job,
            json!({ "state": "inProgress", "attempts": 1 }),
        )
        .await;
        assert_eq!(status(&env, job).await.state, JobState::InProgress);
    }
    let env = env.restart(registry(&probes)).await;
    assert_eq!(env.rt.recover_interrupted_jobs().await.unwrap(), 2);
    assert_eq!(env.rt.recover_interrupted_jobs().await.unwrap(), 0);

    let s = status(&env, once).await;
    assert_eq!(s.state, JobState::Failed);
    assert!(s.error.as_deref().unwrap().contains("Interrupted"), "{s:?}");
    let s = status(&env, retry).await;
    assert_eq!(s.state, JobState::Pending);
    assert_eq!(s.scheduled_time, now(&env) + 1_000.0);
    assert_eq!(status(&env, untouched).await.state, JobState::Pending);

    env.clock.advance_ms(1_000);
    env.rt.scheduler_tick(true).await.unwrap();
    let s = status(&env, retry).await;
    assert_eq!((s.state, s.attempts), (JobState::Success, 2));
    assert_eq!(probes.ok_retry.load(Ordering::SeqCst), 1);
    assert_eq!(probes.once_action.load(Ordering::SeqCst), 0, "never re-run");
    assert_eq!(status(&env, once).await.state, JobState::Failed);
}

#[tokio::test]
async fn scheduling_an_unknown_function_or_bad_args_is_a_validation_error() {
    let (env, _) = setup().await;
    for (name, args) in [
        ("jobs:doesNotExist", json!({})),
        ("jobs:work", json!({ "tag": 5 })),
        ("jobs:work", json!({})),
        ("jobs:aQuery", json!({})),
    ] {
        let r = env
            .mutation(
                "jobs:schedule",
                json!({ "name": name, "delayMs": 0, "args": args }),
            )
            .await;
        let e = expect_err(r, ErrorCode::ValidationError);
        assert!(e.message().contains(name), "{e}");
    }
    assert_eq!(env.count("_scheduled_functions").await, 0);
}

#[tokio::test]
async fn a_job_for_a_function_that_no_longer_exists_fails() {
    let (env, probes) = setup().await;
    let job = schedule(&env, "jobs:work", 1_000, json!({ "tag": "gone" })).await;
    // Restart with a registry where the function was removed.
    let env = env.restart(common::helpers_registry()).await;
    env.clock.advance_ms(1_000);
    env.rt.scheduler_tick(true).await.unwrap();
    let s = status(&env, job).await;
    assert_eq!(s.state, JobState::Failed);
    assert!(s.error.is_some());
    assert_eq!(probes.work.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn recovery_leaves_actions_with_a_live_lease_alone() {
    let (env, probes) = setup().await;
    let job = schedule(&env, "jobs:onceAction", 60_000, json!({})).await;
    // Another node claimed it and holds a lease for 30 s more.
    let until = now(&env) + runtime::scheduler::ACTION_LEASE_MS;
    env.patch(
        "_scheduled_functions",
        job,
        json!({ "state": "inProgress", "attempts": 1, "leaseNode": "other", "leaseUntil": until }),
    )
    .await;
    let env = env.restart(registry(&probes)).await;
    assert_eq!(env.rt.recover_interrupted_jobs().await.unwrap(), 0);
    assert_eq!(status(&env, job).await.state, JobState::InProgress);
    // That node died: once its lease expires, the job is recovered.
    env.clock
        .advance_ms(runtime::scheduler::ACTION_LEASE_MS as u64 + 1);
    assert_eq!(env.rt.recover_interrupted_jobs().await.unwrap(), 1);
    let s = status(&env, job).await;
    assert_eq!(s.state, JobState::Failed);
}
