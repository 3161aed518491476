//! The system services (audit log, rate limiter, idempotency keys, feature
//! flags) through a real `Runtime` over SQLite with a `TestClock`.
//!
//! Tests named `defect_*` are regressions for defects of the original
//! backend (../shared/reference/original-backend-part{1,2}.md §8).
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use auth::Identity;
use database::{Database, DatabaseOptions, RandomIds, Schema, TableDef, TestClock};
use errors::{Error, ErrorCode, Result};
use model::auth::require_user;
use model::ids::{Id, Users};
use model::system::{self, audit::AuditEntry, flags, idempotency, rate_limit};
use persistence_sqlite::{SqliteOptions, SqlitePersistence};
use runtime::{
    FunctionDef, FunctionKind, MutationCtx, QueryCtx, Registry, Runtime, RuntimeConfig, Visibility,
};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use values::{Value, v};

/// 2026-01-15T09:30:00Z (a whole minute, so minute windows start here).
const T0_MS: u64 = 1_768_469_400_000;
const ORG_A: &str = "org_01JH7ZM2V8K4R6T1Y3B5N7Q9WX";
const ORG_B: &str = "org_01JH8B4D6F8H0K2M4P6R8T0V2X";
const HIT_LIMIT: rate_limit::RateLimit = rate_limit::RateLimit {
    max: 5,
    window_ms: 60_000.0,
};
const CHARGE_TTL_MS: f64 = 60_000.0;

// ---------------------------------------------------------------------------
// Harness

fn schema() -> Arc<Schema> {
    let mut tables = runtime::system_tables();
    tables.extend(system::tables());
    // A stand-in for the people domain's `users` table: `require_user`
    // needs `workosUserId` (index `by_workos_id`) and `isActive`.
    tables.push(
        TableDef::new("users")
            .any_shape()
            .index("by_workos_id", &["workosUserId"]),
    );
    tables.push(TableDef::new("test_side_effects").any_shape());
    Arc::new(Schema::builder().tables(tables).build().expect("schema"))
}

fn app_error(code: ErrorCode, message: &str) -> Error {
    Error::app(code, message.to_owned())
}

#[derive(Deserialize)]
struct Subject {
    subject: String,
}

#[derive(Deserialize)]
struct Table {
    table: String,
}

#[derive(Deserialize)]
struct Charge {
    key: String,
    amount: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Audit {
    resource_id: String,
    action: String,
    metadata: Option<Json>,
}

#[derive(Deserialize)]
struct Many {
    n: usize,
}

/// Test functions that use the services as the domains will.
fn test_registry() -> Registry {
    let mut r = Registry::new();
    system::register(&mut r);
    r.register(
        FunctionDef::new("test/users:create", Visibility::Internal)
            .args(v::object([("subject", v::string())]))
            .mutation(|ctx: MutationCtx, args: Subject| async move {
                let id = ctx
                    .db
                    .insert(
                        "users",
                        json!({"workosUserId": args.subject, "isActive": true}),
                    )
                    .await?;
                Ok(id.encode())
            }),
    );
    r.register(
        FunctionDef::new("test/inspect:count", Visibility::Internal)
            .args(v::object([("table", v::string())]))
            .query(|ctx: QueryCtx, args: Table| async move {
                Ok(ctx.db.query(&args.table).collect().await?.len() as f64)
            }),
    );
    r.register(
        FunctionDef::new("test/limited:hit", Visibility::Public).mutation(
            |ctx: MutationCtx, _args: Value| async move {
                let user = require_user(&ctx.db, &ctx.auth).await?;
                // Every concurrent call has taken its snapshot by now, so
                // they all read the same count and must be serialized by OCC.
                tokio::time::sleep(Duration::from_millis(5)).await;
                rate_limit::check_and_consume(
                    &ctx.db,
                    user.id,
                    "test.hit",
                    HIT_LIMIT,
                    ctx.now_ms(),
                )
                .await?;
                Ok(Value::Null)
            },
        ),
    );
    r.register(
        FunctionDef::new("test/limited:hitThenFail", Visibility::Public).mutation(
            |ctx: MutationCtx, _args: Value| async move {
                let user = require_user(&ctx.db, &ctx.auth).await?;
                rate_limit::check_and_consume(
                    &ctx.db,
                    user.id,
                    "test.hit",
                    HIT_LIMIT,
                    ctx.now_ms(),
                )
                .await?;
                Err::<Value, _>(app_error(ErrorCode::Conflict, "failed after consuming"))
            },
        ),
    );
    r.register(
        FunctionDef::new("test/limited:seedOldWindows", Visibility::Internal)
            .args(v::object([("n", v::number())]))
            .mutation(|ctx: MutationCtx, args: Many| async move {
                let user: Id<Users> = Id::new(
                    ctx.db
                        .insert("users", json!({"workosUserId": "old", "isActive": true}))
                        .await?,
                )
                .expect("users id");
                for i in 0..args.n {
                    rate_limit::check_and_consume(
                        &ctx.db,
                        user,
                        &format!("old.{i}"),
                        HIT_LIMIT,
                        ctx.now_ms(),
                    )
                    .await?;
                }
                Ok(Value::Null)
            }),
    );
    r.register(
        FunctionDef::new("test/charges:charge", Visibility::Public)
            .args(v::object([("key", v::string()), ("amount", v::number())]))
            .mutation(|ctx: MutationCtx, args: Charge| async move {
                let user = require_user(&ctx.db, &ctx.auth).await?;
                let now = ctx.now_ms();
                if let Some(done) =
                    idempotency::lookup(&ctx.db, "charges", &args.key, Some(user.id), now).await?
                {
                    return Ok(done);
                }
                ctx.db
                    .insert(
                        "test_side_effects",
                        json!({"user": user.id.to_string(), "key": args.key}),
                    )
                    .await?;
                let result = Value::from_json(json!({
                    "amount": args.amount,
                    "executedAt": now,
                    "userId": user.id.to_string(),
                    "details": {"currency": "EUR", "lines": [1, 2, 3]},
                }))?;
                idempotency::store(
                    &ctx.db,
                    "charges",
                    &args.key,
                    Some(user.id),
                    result.clone(),
                    CHARGE_TTL_MS,
                    now,
                )
                .await?;
                Ok(result)
            }),
    );
    r.register(
        FunctionDef::new("test/audit:record", Visibility::Public)
            .args(v::object([
                ("resourceId", v::string()),
                ("action", v::string()),
                ("metadata", v::optional(v::any())),
            ]))
            .mutation(|ctx: MutationCtx, args: Audit| async move {
                let user = require_user(&ctx.db, &ctx.auth).await?;
                let mut entry =
                    AuditEntry::new("meeting", args.resource_id, args.action, ctx.now_ms())
                        .by(&user);
                if let Some(m) = args.metadata {
                    // Keys the wire would refuse can still come from Rust code.
                    entry = entry.metadata(m).with("$rust", "x").with("naïve", 1);
                }
                system::audit::record(&ctx.db, entry).await?;
                Ok(Value::Null)
            }),
    );
    r
}

struct Env {
    _dir: tempfile::TempDir,
    clock: Arc<TestClock>,
    rt: Runtime,
}

impl Env {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = TestClock::at_ms(T0_MS);
        let persistence =
            SqlitePersistence::open(dir.path(), SqliteOptions::default()).expect("sqlite");
        let db = Database::open(
            persistence,
            schema(),
            Arc::clone(&clock) as Arc<dyn database::Clock>,
            Arc::new(RandomIds),
            DatabaseOptions::default(),
        )
        .await
        .expect("database");
        let rt = Runtime::new(db, test_registry(), RuntimeConfig::default());
        Self {
            _dir: dir,
            clock,
            rt,
        }
    }

    async fn call(
        &self,
        kind: FunctionKind,
        path: &str,
        args: Json,
        who: Option<&Arc<Identity>>,
    ) -> Result<Json> {
        self.rt
            .call(kind, path, Value::from_json(args)?, who.cloned())
            .await
            .map(|v| v.to_json())
    }

    async fn query(&self, path: &str, args: Json, who: Option<&Arc<Identity>>) -> Result<Json> {
        self.call(FunctionKind::Query, path, args, who).await
    }

    async fn mutation(&self, path: &str, args: Json, who: Option<&Arc<Identity>>) -> Result<Json> {
        self.call(FunctionKind::Mutation, path, args, who).await
    }

    /// Creates the `users` row of `subject` and returns its identity (with
    /// `org_id` / `role` claims when given) and id.
    async fn user(
        &self,
        subject: &str,
        org: Option<&str>,
        role: Option<&str>,
    ) -> (Arc<Identity>, Id<Users>) {
        let id = self
            .mutation("test/users:create", json!({"subject": subject}), None)
            .await
            .expect("create user");
        let id = Id::parse(id.as_str().expect("id string")).expect("users id");
        (identity(subject, org, role), id)
    }

    async fn count(&self, table: &str) -> f64 {
        self.query("test/inspect:count", json!({"table": table}), None)
            .await
            .expect("count")
            .as_f64()
            .expect("number")
    }
}

fn identity(subject: &str, org: Option<&str>, role: Option<&str>) -> Arc<Identity> {
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), subject.into());
    claims.insert("iss".into(), "connvo-test".into());
    if let Some(org) = org {
        claims.insert("org_id".into(), org.into());
    }
    if let Some(role) = role {
        claims.insert("role".into(), role.into());
    }
    Arc::new(Identity::from_claims(claims))
}

fn code(result: &Result<Json>) -> Option<ErrorCode> {
    result.as_ref().err().map(Error::code)
}

// ---------------------------------------------------------------------------
// Rate limiting

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limiter_admits_exactly_max_per_window_under_concurrency() {
    let env = Arc::new(Env::new().await);
    let (ada, _) = env.user("user_ada", Some(ORG_A), Some("member")).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let env = Arc::clone(&env);
        let ada = Arc::clone(&ada);
        tasks.push(tokio::spawn(async move {
            env.mutation("test/limited:hit", json!({}), Some(&ada))
                .await
        }));
    }
    let mut admitted = 0;
    let mut limited = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => admitted += 1,
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::RateLimitExceeded, "{e:?}");
                assert!(e.is_application());
                let meta = e.metadata().expect("metadata");
                assert_eq!(meta["action"], "test.hit");
                assert_eq!(meta["limit"], 5);
                assert_eq!(meta["windowMs"], 60_000.0);
                assert_eq!(meta["retryAfterSeconds"], 60.0);
                assert_eq!(meta["resetTime"], (T0_MS + 60_000) as f64);
                limited += 1;
            }
        }
    }
    assert_eq!((admitted, limited), (HIT_LIMIT.max, 15));
    assert_eq!(env.count("rateLimits").await, 1.0);

    // Later in the same window: still refused, with a shorter wait.
    env.clock.advance_ms(45_500);
    let err = env
        .mutation("test/limited:hit", json!({}), Some(&ada))
        .await
        .expect_err("still limited");
    assert_eq!(err.metadata().expect("metadata")["retryAfterSeconds"], 15.0);

    // The next window admits again, exactly `max` times.
    env.clock.advance_ms(14_500);
    for _ in 0..HIT_LIMIT.max {
        env.mutation("test/limited:hit", json!({}), Some(&ada))
            .await
            .expect("admitted in the next window");
    }
    let err = env
        .mutation("test/limited:hit", json!({}), Some(&ada))
        .await
        .expect_err("limited again");
    assert_eq!(err.code(), ErrorCode::RateLimitExceeded);
    assert_eq!(env.count("rateLimits").await, 2.0);
}

#[tokio::test]
async fn rate_limits_are_per_user_and_a_failed_mutation_gives_its_slot_back() {
    let env = Env::new().await;
    let (ada, _) = env.user("user_ada", Some(ORG_A), None).await;
    let (grace, _) = env.user("user_grace", Some(ORG_A), None).await;
    for _ in 0..3 {
        let r = env
            .mutation("test/limited:hitThenFail", json!({}), Some(&ada))
            .await;
        assert_eq!(code(&r), Some(ErrorCode::Conflict));
    }
    for _ in 0..HIT_LIMIT.max {
        env.mutation("test/limited:hit", json!({}), Some(&ada))
            .await
            .expect("rolled-back calls consumed nothing");
    }
    let r = env
        .mutation("test/limited:hit", json!({}), Some(&ada))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::RateLimitExceeded));
    env.mutation("test/limited:hit", json!({}), Some(&grace))
        .await
        .expect("another user has their own window");
    let r = env.mutation("test/limited:hit", json!({}), None).await;
    assert_eq!(code(&r), Some(ErrorCode::Unauthorized));
}

#[tokio::test]
async fn internal_enforce_reports_remaining_and_reset() {
    let env = Env::new().await;
    let (_, ada_id) = env.user("user_ada", None, None).await;
    let args = json!({"userId": ada_id.to_string(), "action": "recording_start", "windowMs": 60000, "maxCount": 3});
    for remaining in [2.0, 1.0, 0.0] {
        let out = env
            .mutation("system/rateLimit:enforce", args.clone(), None)
            .await
            .expect("admitted");
        assert_eq!(out["remaining"], remaining);
        assert_eq!(out["resetAt"], (T0_MS + 60_000) as f64);
    }
    let r = env.mutation("system/rateLimit:enforce", args, None).await;
    assert_eq!(code(&r), Some(ErrorCode::RateLimitExceeded));
    assert!(
        env.rt
            .resolve_public("system/rateLimit:enforce", None)
            .is_err()
    );
}

#[tokio::test]
async fn hourly_cron_deletes_windows_older_than_a_day_in_bounded_batches() {
    let env = Env::new().await;
    let crons: Vec<_> = env
        .rt
        .registry()
        .crons()
        .iter()
        .map(|c| c.function.clone())
        .collect();
    assert!(crons.contains(&rate_limit::CLEANUP_PATH.to_owned()));
    assert!(crons.contains(&idempotency::PURGE_PATH.to_owned()));
    for cron in env.rt.registry().crons() {
        assert!(
            matches!(cron.schedule, runtime::CronSchedule::Interval(d) if d == Duration::from_secs(3600))
        );
        assert!(env.rt.registry().get(&cron.function).is_some());
    }

    env.mutation("test/limited:seedOldWindows", json!({"n": 300}), None)
        .await
        .expect("seed");
    assert_eq!(env.count("rateLimits").await, 300.0);
    // Less than a day later nothing is deleted.
    env.clock.advance_ms(23 * 3_600_000);
    let deleted = env
        .mutation(rate_limit::CLEANUP_PATH, json!({}), None)
        .await
        .expect("cleanup");
    assert_eq!(deleted, 0.0);
    env.clock.advance_ms(3_600_000 + 1);
    let deleted = env
        .mutation(rate_limit::CLEANUP_PATH, json!({}), None)
        .await
        .expect("cleanup");
    assert_eq!(deleted, 256.0, "one bounded batch");
    // The full batch scheduled a follow-up run that deletes the rest.
    env.rt.scheduler_tick(true).await.expect("tick");
    assert_eq!(env.count("rateLimits").await, 0.0);
}

// ---------------------------------------------------------------------------
// Idempotency

#[tokio::test]
async fn idempotency_replays_the_stored_result_within_ttl_and_not_after() {
    let env = Env::new().await;
    let (ada, _) = env.user("user_ada", Some(ORG_A), None).await;
    let first = env
        .mutation(
            "test/charges:charge",
            json!({"key": "k1", "amount": 10}),
            Some(&ada),
        )
        .await
        .expect("first");
    assert_eq!(first["executedAt"], T0_MS as f64);

    env.clock.advance_ms(30_000);
    let replay = env
        .mutation(
            "test/charges:charge",
            json!({"key": "k1", "amount": 10}),
            Some(&ada),
        )
        .await
        .expect("replay");
    assert_eq!(replay, first, "the stored result is replayed");
    assert_eq!(env.count("test_side_effects").await, 1.0);
    let stored = env
        .query(
            "system/idempotency:getResult",
            json!({"scope": "charges", "key": "k1", "userId": first["userId"]}),
            None,
        )
        .await
        .expect("getResult");
    assert_eq!(stored, json!({"result": first}));

    // At and after expiry the operation runs again.
    env.clock.advance_ms(30_000);
    let again = env
        .mutation(
            "test/charges:charge",
            json!({"key": "k1", "amount": 10}),
            Some(&ada),
        )
        .await
        .expect("after ttl");
    assert_eq!(again["executedAt"], (T0_MS + 60_000) as f64);
    assert_eq!(env.count("test_side_effects").await, 2.0);
    assert_eq!(
        env.count("idempotencyKeys").await,
        1.0,
        "the key was replaced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_calls_with_one_key_run_the_operation_once() {
    let env = Arc::new(Env::new().await);
    let (ada, _) = env.user("user_ada", Some(ORG_A), None).await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let env = Arc::clone(&env);
        let ada = Arc::clone(&ada);
        tasks.push(tokio::spawn(async move {
            env.mutation(
                "test/charges:charge",
                json!({"key": "once", "amount": 5}),
                Some(&ada),
            )
            .await
            .expect("charge")
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task"));
    }
    assert!(results.iter().all(|r| *r == results[0]));
    assert_eq!(env.count("test_side_effects").await, 1.0);
}

#[tokio::test]
async fn defect_idempotency_keys_not_scoped_per_user() {
    // The original's keys were global: a second user sending the same key
    // (e.g. the same onboarding form hash) got the first user's result and
    // nothing was done for them.
    let env = Env::new().await;
    let (ada, ada_id) = env.user("user_ada", Some(ORG_A), None).await;
    let (grace, grace_id) = env.user("user_grace", Some(ORG_A), None).await;
    let a = env
        .mutation(
            "test/charges:charge",
            json!({"key": "same", "amount": 1}),
            Some(&ada),
        )
        .await
        .expect("ada");
    let g = env
        .mutation(
            "test/charges:charge",
            json!({"key": "same", "amount": 2}),
            Some(&grace),
        )
        .await
        .expect("grace");
    assert_eq!(a["userId"], ada_id.to_string());
    assert_eq!(g["userId"], grace_id.to_string());
    assert_eq!(g["amount"], 2.0);
    assert_eq!(env.count("test_side_effects").await, 2.0);
    // A key without a user is a third, separate key.
    let none = env
        .query(
            "system/idempotency:getResult",
            json!({"scope": "charges", "key": "same"}),
            None,
        )
        .await
        .expect("getResult");
    assert_eq!(none, Json::Null);
}

#[tokio::test]
async fn defect_idempotency_replay_returns_undefined() {
    // The original replayed `metadata.result`, which was never written, so
    // every replay returned undefined ("Idempotent result missing").
    let env = Env::new().await;
    let (ada, _) = env.user("user_ada", None, None).await;
    let first = env
        .mutation(
            "test/charges:charge",
            json!({"key": "k", "amount": 3}),
            Some(&ada),
        )
        .await
        .expect("first");
    let replay = env
        .mutation(
            "test/charges:charge",
            json!({"key": "k", "amount": 3}),
            Some(&ada),
        )
        .await
        .expect("replay");
    assert_eq!(
        replay["details"],
        json!({"currency": "EUR", "lines": [1, 2, 3]})
    );
    assert_eq!(replay, first);
}

#[tokio::test]
async fn defect_duplicate_idempotency_keys_break_unique() {
    // The original inserted a second document for a key it re-stored
    // (forceRegenerate), after which `.unique()` threw on every read.
    let env = Env::new().await;
    let store = |result: Json| json!({"scope": "prompt_generation", "key": "precall_m1", "result": result, "ttlMs": 3_600_000});
    env.mutation("system/idempotency:storeResult", store(json!("v1")), None)
        .await
        .expect("store");
    env.mutation("system/idempotency:storeResult", store(json!("v2")), None)
        .await
        .expect("store again");
    assert_eq!(env.count("idempotencyKeys").await, 1.0);
    let got = env
        .query(
            "system/idempotency:getResult",
            json!({"scope": "prompt_generation", "key": "precall_m1"}),
            None,
        )
        .await
        .expect("get");
    assert_eq!(got, json!({"result": "v2"}));
}

#[tokio::test]
async fn defect_idempotency_keys_never_cleaned_up() {
    let env = Env::new().await;
    for (key, ttl) in [("short", 1_000), ("long", 7_200_000)] {
        env.mutation(
            "system/idempotency:storeResult",
            json!({"scope": "s", "key": key, "result": null, "ttlMs": ttl}),
            None,
        )
        .await
        .expect("store");
    }
    let stored_null = env
        .query(
            "system/idempotency:getResult",
            json!({"scope": "s", "key": "short"}),
            None,
        )
        .await
        .expect("get");
    assert_eq!(
        stored_null,
        json!({"result": null}),
        "a null result is a result"
    );
    env.clock.advance_ms(3_600_000);
    let purged = env
        .mutation(idempotency::PURGE_PATH, json!({}), None)
        .await
        .expect("purge");
    assert_eq!(purged, 1.0);
    assert_eq!(env.count("idempotencyKeys").await, 1.0);
    let expired = env
        .query(
            "system/idempotency:getResult",
            json!({"scope": "s", "key": "short"}),
            None,
        )
        .await
        .expect("get");
    assert_eq!(expired, Json::Null);
}

// ---------------------------------------------------------------------------
// Audit log

struct AuditWorld {
    env: Env,
    ada: Arc<Identity>,
    grace: Arc<Identity>,
    bob: Arc<Identity>,
}

/// Ada (admin) and Grace (member) of org A, Bob (admin) of org B; three
/// entries of org A a minute apart (two on meeting m1) and one of org B.
async fn audit_world() -> AuditWorld {
    let env = Env::new().await;
    let (ada, _) = env.user("user_ada", Some(ORG_A), Some("admin")).await;
    let (grace, _) = env.user("user_grace", Some(ORG_A), Some("member")).await;
    let (bob, _) = env.user("user_bob", Some(ORG_B), Some("admin")).await;
    for (who, resource, action) in [
        (&ada, "m1", "participant.role_changed"),
        (&grace, "m2", "meeting.cancelled"),
        (&ada, "m1", "participant.removed"),
        (&bob, "m9", "meeting.deleted"),
    ] {
        env.mutation(
            "test/audit:record",
            json!({"resourceId": resource, "action": action}),
            Some(who),
        )
        .await
        .expect("record");
        env.clock.advance_ms(60_000);
    }
    AuditWorld {
        env,
        ada,
        grace,
        bob,
    }
}

fn page_args(extra: Json) -> Json {
    let mut args = json!({"paginationOpts": {"numItems": 20, "cursor": null}});
    if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
        a.extend(e.clone());
    }
    args
}

fn actions(page: &Json) -> Vec<String> {
    page["page"]
        .as_array()
        .expect("page")
        .iter()
        .map(|e| e["action"].as_str().expect("action").to_owned())
        .collect()
}

#[tokio::test]
async fn audit_log_is_readable_by_an_admin_of_the_same_org_newest_first() {
    let w = audit_world().await;
    let all = w
        .env
        .query(
            "audit/logging:listAuditLogs",
            page_args(json!({})),
            Some(&w.ada),
        )
        .await
        .expect("admin reads");
    assert_eq!(
        actions(&all),
        [
            "participant.removed",
            "meeting.cancelled",
            "participant.role_changed"
        ]
    );
    assert_eq!(all["isDone"], true);
    assert!(
        all["page"]
            .as_array()
            .expect("page")
            .iter()
            .all(|e| e["orgId"] == ORG_A)
    );

    let m1 = w
        .env
        .query(
            "audit/logging:listAuditLogs",
            page_args(json!({"resourceType": "meeting", "resourceId": "m1", "orgId": ORG_A})),
            Some(&w.ada),
        )
        .await
        .expect("by resource");
    assert_eq!(
        actions(&m1),
        ["participant.removed", "participant.role_changed"]
    );

    let by_type = w
        .env
        .query(
            "audit/logging:listAuditLogs",
            page_args(json!({"resourceType": "meeting"})),
            Some(&w.ada),
        )
        .await
        .expect("by type");
    assert_eq!(actions(&by_type).len(), 3);

    // Pages of two: newest first, then the rest.
    let first = w
        .env
        .query(
            "audit/logging:listAuditLogs",
            json!({"paginationOpts": {"numItems": 2, "cursor": null}}),
            Some(&w.ada),
        )
        .await
        .expect("page 1");
    assert_eq!(
        actions(&first),
        ["participant.removed", "meeting.cancelled"]
    );
    let second = w
        .env
        .query(
            "audit/logging:listAuditLogs",
            json!({"paginationOpts": {"numItems": 2, "cursor": first["continueCursor"]}}),
            Some(&w.ada),
        )
        .await
        .expect("page 2");
    assert_eq!(actions(&second), ["participant.role_changed"]);
    assert_eq!(second["isDone"], true);

    let r = w
        .env
        .query(
            "audit/logging:listAuditLogs",
            page_args(json!({"resourceId": "m1"})),
            Some(&w.ada),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::ValidationError));
}

#[tokio::test]
async fn audit_log_is_forbidden_to_members_and_to_admins_of_another_org() {
    let w = audit_world().await;
    let env = &w.env;
    let list = |who: Option<Arc<Identity>>, extra: Json| async move {
        env.query(
            "audit/logging:listAuditLogs",
            page_args(extra),
            who.as_ref(),
        )
        .await
    };
    assert_eq!(
        code(&list(Some(w.grace.clone()), json!({})).await),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        code(&list(Some(w.bob.clone()), json!({"orgId": ORG_A})).await),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        code(
            &list(
                Some(w.bob.clone()),
                json!({"resourceType": "meeting", "resourceId": "m1", "orgId": ORG_A})
            )
            .await
        ),
        Some(ErrorCode::Forbidden)
    );
    // Without naming org A, Bob sees his own org's entries only.
    let bobs = list(
        Some(w.bob.clone()),
        json!({"resourceType": "meeting", "resourceId": "m1"}),
    )
    .await
    .expect("bob reads his org");
    assert!(actions(&bobs).is_empty());
    let bobs = list(Some(w.bob.clone()), json!({}))
        .await
        .expect("bob reads his org");
    assert_eq!(actions(&bobs), ["meeting.deleted"]);
    // An admin role without an org, and no token at all.
    let (orgless, _) = w.env.user("user_orgless", None, Some("admin")).await;
    assert_eq!(
        code(&list(Some(orgless.clone()), json!({})).await),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        code(&list(None, json!({})).await),
        Some(ErrorCode::Unauthorized)
    );
}

#[tokio::test]
async fn defect_create_audit_log_public() {
    // The original's `audit/logging:createAuditLog` was callable by any
    // client, so anyone could forge audit entries.
    let env = Env::new().await;
    let err = env
        .rt
        .resolve_public("audit/logging:createAuditLog", None)
        .expect_err("not public");
    assert_eq!(err.code(), ErrorCode::FunctionNotFound);
    let spec = env
        .rt
        .registry()
        .get("audit/logging:createAuditLog")
        .expect("registered");
    assert_eq!(spec.visibility, Visibility::Internal);
    // Internally it still works, folding category and success into metadata.
    let (ada, ada_id) = env.user("user_ada", Some(ORG_A), Some("admin")).await;
    env.mutation(
        "audit/logging:createAuditLog",
        json!({
            "actorUserId": ada_id.to_string(), "orgId": ORG_A, "resourceType": "user",
            "resourceId": ada_id.to_string(), "action": "onboarding.save",
            "category": "auth", "success": true, "metadata": {"interestsCount": 3}
        }),
        None,
    )
    .await
    .expect("internal create");
    let page = env
        .query(
            "audit/logging:listAuditLogs",
            page_args(json!({})),
            Some(&ada),
        )
        .await
        .expect("list");
    let entry = &page["page"][0];
    assert_eq!(
        entry["metadata"],
        json!({"category": "auth", "success": true, "interestsCount": 3})
    );
    assert_eq!(entry["timestamp"], T0_MS as f64);
    assert_eq!(entry["actorUserId"], ada_id.to_string());
}

#[tokio::test]
async fn defect_get_audit_logs_public_without_auth() {
    // The original's `audit/logging:getAuditLogs` returned the whole audit
    // trail to anyone. It does not exist here; the reader needs an org admin.
    let env = Env::new().await;
    assert!(
        env.rt
            .resolve_public("audit/logging:getAuditLogs", None)
            .is_err()
    );
    let r = env
        .query("audit/logging:listAuditLogs", page_args(json!({})), None)
        .await;
    assert_eq!(code(&r), Some(ErrorCode::Unauthorized));
}

#[tokio::test]
async fn audit_metadata_is_stored_as_a_record_of_primitives() {
    let w = audit_world().await;
    w.env
        .mutation(
            "test/audit:record",
            json!({
                "resourceId": "m3", "action": "meeting.updated",
                "metadata": {"title": "Q1", "count": 2, "ok": false, "gone": null,
                             "nested": {"a": [1, 2]}}
            }),
            Some(&w.ada),
        )
        .await
        .expect("record");
    let page = w
        .env
        .query(
            "audit/logging:listAuditLogs",
            page_args(json!({"resourceType": "meeting", "resourceId": "m3"})),
            Some(&w.ada),
        )
        .await
        .expect("list");
    assert_eq!(
        page["page"][0]["metadata"],
        json!({"title": "Q1", "count": 2, "ok": false, "nested": "{\"a\":[1,2]}",
               "_$rust": "x", "na_ve": 1})
    );
}

// ---------------------------------------------------------------------------
// Feature flags

#[test]
fn feature_flag_rollout_is_deterministic_and_close_to_the_percentage() {
    // The rule is pinned (values computed independently from the documented
    // rule): changing it would silently move users between rollout groups.
    assert_eq!(
        flags::rollout_bucket("meetings.liveTranscription", "user_1"),
        1
    );
    assert_eq!(
        flags::rollout_bucket("meetings.liveTranscription", "user_2"),
        36
    );
    assert_eq!(flags::rollout_bucket("k", "user_42"), 1);
    for pct in [10.0, 25.0, 50.0, 90.0] {
        let subjects: Vec<String> = (0..1000).map(|i| format!("user_{i}")).collect();
        let admitted = subjects
            .iter()
            .filter(|s| flags::in_rollout("meetings.liveTranscription", s, pct))
            .count();
        let again = subjects
            .iter()
            .filter(|s| flags::in_rollout("meetings.liveTranscription", s, pct))
            .count();
        assert_eq!(admitted, again);
        let expected = pct * 10.0;
        assert!(
            (admitted as f64 - expected).abs() <= 50.0,
            "{admitted} of 1000 admitted at {pct}%"
        );
    }
    // Raising the percentage only adds subjects; 0 and 100 are absolute.
    for i in 0..1000 {
        let s = format!("user_{i}");
        if flags::in_rollout("k", &s, 30.0) {
            assert!(flags::in_rollout("k", &s, 31.0));
        }
        assert!(!flags::in_rollout("k", &s, 0.0));
        assert!(flags::in_rollout("k", &s, 100.0));
        assert!(flags::rollout_bucket("k", &s) < 100);
    }
    // Different flags sample different subjects.
    let differ = (0..1000)
        .filter(|i| {
            let s = format!("user_{i}");
            flags::in_rollout("a", &s, 50.0) != flags::in_rollout("b", &s, 50.0)
        })
        .count();
    assert!(differ > 300, "{differ}");
}

async fn set_flag(env: &Env, args: Json) -> Json {
    env.mutation("system/featureFlags:setFlag", args, None)
        .await
        .expect("set flag")
}

#[tokio::test]
async fn get_flag_evaluates_the_rollout_for_the_caller() {
    let env = Env::new().await;
    let (ada, ada_id) = env.user("user_ada", Some(ORG_A), None).await;
    let get = |args: Json| env.query("system/featureFlags:getFlag", args, Some(&ada));
    assert_eq!(
        get(json!({"key": "x"})).await.expect("unset"),
        json!({"key": "x", "environment": "production", "value": null})
    );
    set_flag(&env, json!({"key": "x", "value": true})).await;
    assert_eq!(get(json!({"key": "x"})).await.expect("on")["value"], true);
    assert_eq!(
        get(json!({"key": "x", "environment": "staging"}))
            .await
            .expect("other env")["value"],
        Json::Null
    );
    set_flag(
        &env,
        json!({"key": "x", "value": "blue", "rolloutPercentage": 0}),
    )
    .await;
    assert_eq!(
        get(json!({"key": "x"})).await.expect("0%")["value"],
        Json::Null
    );

    let bucket = flags::rollout_bucket("x", &ada_id.to_string());
    let inside = f64::from(bucket + 1);
    set_flag(
        &env,
        json!({"key": "x", "value": 7, "rolloutPercentage": inside}),
    )
    .await;
    assert_eq!(
        get(json!({"key": "x"})).await.expect("inside")["value"],
        7.0
    );
    let outside = f64::from(bucket);
    set_flag(
        &env,
        json!({"key": "x", "value": 7, "rolloutPercentage": outside}),
    )
    .await;
    assert_eq!(
        get(json!({"key": "x"})).await.expect("outside")["value"],
        Json::Null
    );

    assert_eq!(
        code(
            &env.query("system/featureFlags:getFlag", json!({"key": "x"}), None)
                .await
        ),
        Some(ErrorCode::Unauthorized)
    );
    let r = env
        .mutation(
            "system/featureFlags:setFlag",
            json!({"key": "x", "value": true, "rolloutPercentage": 101}),
            None,
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::ValidationError));
}

#[tokio::test]
async fn list_flags_returns_the_environment_sorted_and_evaluated() {
    let env = Env::new().await;
    let (ada, _) = env.user("user_ada", None, None).await;
    set_flag(&env, json!({"key": "notes.maxCollaborators", "value": 8})).await;
    set_flag(
        &env,
        json!({"key": "meetings.liveTranscription", "value": true}),
    )
    .await;
    set_flag(
        &env,
        json!({"key": "hidden", "value": true, "rolloutPercentage": 0}),
    )
    .await;
    set_flag(
        &env,
        json!({"key": "staging.only", "value": true, "environment": "staging"}),
    )
    .await;
    let list = env
        .query("system/featureFlags:listFlags", json!({}), Some(&ada))
        .await
        .expect("list");
    assert_eq!(
        list,
        json!([
            {"key": "hidden", "environment": "production", "value": null},
            {"key": "meetings.liveTranscription", "environment": "production", "value": true},
            {"key": "notes.maxCollaborators", "environment": "production", "value": 8},
        ])
    );
}

#[tokio::test]
async fn a_flag_change_reruns_a_live_get_flag_subscription() {
    let env = Env::new().await;
    let (ada, _) = env.user("user_ada", Some(ORG_A), None).await;
    set_flag(
        &env,
        json!({"key": "meetings.liveTranscription", "value": false}),
    )
    .await;
    let spec = env
        .rt
        .registry()
        .get("system/featureFlags:getFlag")
        .expect("getFlag")
        .clone();
    let outcome = env
        .rt
        .run_query(
            &spec,
            Value::from_json(json!({"key": "meetings.liveTranscription"})).expect("args"),
            Some(Arc::clone(&ada)),
            None,
            None,
        )
        .await;
    assert_eq!(outcome.result.expect("getFlag").to_json()["value"], false);
    let sub = env
        .rt
        .database()
        .subscriptions()
        .subscribe(Arc::clone(&outcome.read_set), outcome.ts);

    // Another flag changing does not touch the subscription.
    set_flag(&env, json!({"key": "notes.offline", "value": true})).await;
    assert_eq!(sub.invalidated_at(), None);

    set_flag(
        &env,
        json!({"key": "meetings.liveTranscription", "value": true}),
    )
    .await;
    let at = tokio::time::timeout(Duration::from_secs(5), sub.wait_invalidated())
        .await
        .expect("invalidated");
    assert!(at > outcome.ts);
    let rerun = env
        .query(
            "system/featureFlags:getFlag",
            json!({"key": "meetings.liveTranscription"}),
            Some(&ada),
        )
        .await
        .expect("rerun");
    assert_eq!(rerun["value"], true);
}

#[tokio::test]
async fn admin_set_flag_is_limited_to_operator_org_admins_and_audited() {
    let env = Env::new().await;
    let (ada, ada_id) = env.user("user_ada", Some(ORG_A), Some("admin")).await;
    let (grace, _) = env.user("user_grace", Some(ORG_A), Some("member")).await;
    let (bob, _) = env.user("user_bob", Some(ORG_B), Some("admin")).await;
    let args = json!({"key": "meetings.liveTranscription", "value": true, "rolloutPercentage": 25});
    let set = |who: &Arc<Identity>, args: Json| {
        let who = Arc::clone(who);
        let env = &env;
        async move {
            env.mutation("admin/featureFlags:setFlag", args, Some(&who))
                .await
        }
    };
    // No operator organization configured: nobody may use it.
    assert_eq!(
        code(&set(&ada, args.clone()).await),
        Some(ErrorCode::Forbidden)
    );
    set_flag(
        &env,
        json!({"key": flags::FLAG_ADMIN_ORGS_KEY, "value": format!("org_other, {ORG_A}")}),
    )
    .await;

    let flag = set(&ada, args.clone()).await.expect("operator admin sets");
    assert_eq!(flag["rolloutPercentage"], 25.0);
    assert_eq!(flag["updatedBy"], ada_id.to_string());
    assert_eq!(flag["createdAt"], T0_MS as f64);
    assert_eq!(
        code(&set(&grace, args.clone()).await),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        code(&set(&bob, args.clone()).await),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        code(
            &set(
                &ada,
                json!({"key": flags::FLAG_ADMIN_ORGS_KEY, "value": ORG_B})
            )
            .await
        ),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        code(
            &set(
                &ada,
                json!({"key": "k", "value": true, "rolloutPercentage": 150})
            )
            .await
        ),
        Some(ErrorCode::ValidationError)
    );
    env.clock.advance_ms(1_000);
    let again = set(
        &ada,
        json!({"key": "meetings.liveTranscription", "value": false}),
    )
    .await
    .expect("update");
    assert_eq!(again["_id"], flag["_id"]);
    assert_eq!(again["createdAt"], T0_MS as f64);
    assert_eq!(again["updatedAt"], (T0_MS + 1_000) as f64);

    let audit = env
        .query(
            "audit/logging:listAuditLogs",
            page_args(json!({"resourceType": "featureFlag"})),
            Some(&ada),
        )
        .await
        .expect("audit");
    assert_eq!(audit["page"].as_array().expect("page").len(), 2);
    let latest = &audit["page"][0];
    assert_eq!(latest["action"], "featureFlag.set");
    assert_eq!(latest["resourceId"], flag["_id"]);
    assert_eq!(latest["actorUserId"], ada_id.to_string());
    assert_eq!(
        latest["metadata"],
        json!({"key": "meetings.liveTranscription", "environment": "production",
               "value": false, "rolloutPercentage": 100, "previousValue": true})
    );
}

// ---------------------------------------------------------------------------
// Schema, registration and documentation

#[test]
fn model_schema_includes_the_system_tables() {
    let schema = model::schema().expect("model schema builds");
    for table in ["auditLogs", "rateLimits", "idempotencyKeys", "featureFlags"] {
        assert!(schema.table(table).is_some(), "{table}");
    }
    let mut registry = Registry::new();
    model::register(&mut registry, model::ModelOptions::default());
    for path in [
        "audit/logging:listAuditLogs",
        "system/featureFlags:getFlag",
        "system/featureFlags:listFlags",
        "admin/featureFlags:setFlag",
    ] {
        assert_eq!(
            registry.get(path).expect(path).visibility,
            Visibility::Public
        );
    }
    for path in [
        "audit/logging:createAuditLog",
        "system/featureFlags:setFlag",
        "system/rateLimit:enforce",
        "system/rateLimit:cleanupExpiredWindows",
        "system/idempotency:getResult",
        "system/idempotency:storeResult",
        "system/idempotency:purgeExpiredKeys",
    ] {
        assert_eq!(
            registry.get(path).expect(path).visibility,
            Visibility::Internal
        );
    }
}

/// The sections of a doc comment: `(tag, text)` with fenced JSON blocks
/// parsed for `@example` sections.
fn doc_sections(doc: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut in_fence = false;
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence && line.starts_with('@') {
            let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
            out.push((tag.to_owned(), format!("{rest}\n")));
            continue;
        }
        if let Some(last) = out.last_mut() {
            last.1.push_str(line);
            last.1.push('\n');
        }
    }
    out
}

fn fenced_json(section: &str) -> Json {
    let start = section.find("```json").expect("fenced json") + "```json".len();
    let end = section[start..].find("```").expect("closing fence") + start;
    serde_json::from_str(&section[start..end]).expect("example is valid JSON")
}

#[test]
fn public_functions_follow_the_doc_standard() {
    let mut registry = Registry::new();
    system::register(&mut registry);
    let mut summaries = std::collections::BTreeSet::new();
    for spec in registry.functions() {
        if spec.visibility != Visibility::Public {
            assert!(
                !spec.doc.trim().is_empty(),
                "{}: internal functions are documented too",
                spec.path
            );
            continue;
        }
        let sections = doc_sections(&spec.doc);
        let get = |tag: &str, label: &str| {
            sections
                .iter()
                .find(|(t, rest)| t == tag && rest.lines().next().unwrap_or("").trim() == label)
                .map(|(_, text)| text.clone())
        };
        let summary = sections
            .iter()
            .find(|(t, _)| t == "@summary")
            .map(|(_, s)| s.trim().to_owned())
            .unwrap_or_else(|| panic!("{}: @summary", spec.path));
        assert!(
            summary.chars().count() < 100,
            "{}: summary too long",
            spec.path
        );
        let verb = summary.split_whitespace().next().unwrap_or("");
        assert!(
            verb.ends_with('s') && verb.chars().next().is_some_and(char::is_uppercase),
            "{}: verb",
            spec.path
        );
        assert!(
            summaries.insert(summary.clone()),
            "{}: duplicate summary",
            spec.path
        );
        let description = sections
            .iter()
            .find(|(t, _)| t == "@description")
            .map(|(_, s)| s.trim().to_owned())
            .unwrap_or_default();
        assert!(
            description.chars().count() > 50,
            "{}: description",
            spec.path
        );

        let request = fenced_json(
            &get("@example", "request").unwrap_or_else(|| panic!("{}: request", spec.path)),
        );
        let args = Value::from_json(request["args"].clone()).expect("convex json");
        spec.args
            .validate(&args)
            .unwrap_or_else(|e| panic!("{}: request: {e}", spec.path));
        let response = fenced_json(
            &get("@example", "response").unwrap_or_else(|| panic!("{}: response", spec.path)),
        );
        assert_eq!(response["status"], "success");
        let value = Value::from_json(response["value"].clone()).expect("convex json");
        spec.returns
            .validate(&value)
            .unwrap_or_else(|e| panic!("{}: response: {e}", spec.path));
        if let Some(err) = get("@example", "response-error") {
            let err = fenced_json(&err);
            assert_eq!(err["status"], "error");
            assert!(
                err["errorData"]["code"].is_string() && err["errorData"]["message"].is_string()
            );
            let req = fenced_json(&get("@example", "request-error").expect("request-error"));
            let args = Value::from_json(req["args"].clone()).expect("convex json");
            spec.args
                .validate(&args)
                .unwrap_or_else(|e| panic!("{}: request-error: {e}", spec.path));
        }
    }
}

#[tokio::test]
async fn denied_access_is_recorded_in_the_audit_log() {
    let w = audit_world().await;
    // Grace (a member) tries the admin-only reader and is refused.
    assert_eq!(
        code(
            &w.env
                .query(
                    "audit/logging:listAuditLogs",
                    page_args(json!({})),
                    Some(&w.grace)
                )
                .await
        ),
        Some(ErrorCode::Forbidden)
    );
    // The runtime records the refusal in its own transaction, in the
    // background: Ada (admin of the same org) sees it shortly after.
    let mut found = None;
    for _ in 0..100 {
        let page = w
            .env
            .query(
                "audit/logging:listAuditLogs",
                page_args(json!({"resourceType": "function", "resourceId": "audit/logging:listAuditLogs"})),
                Some(&w.ada),
            )
            .await
            .expect("admin reads");
        if let Some(entry) = page["page"].as_array().and_then(|p| p.first()).cloned() {
            found = Some(entry);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let entry = found.expect("an access.denied entry");
    assert_eq!(entry["action"], "access.denied");
    assert_eq!(entry["metadata"]["code"], "FORBIDDEN");
    assert!(entry["actorUserId"].is_string(), "{entry}");
    // Bob (admin of another org) does not see org A's denial.
    let bobs = w
        .env
        .query(
            "audit/logging:listAuditLogs",
            page_args(
                json!({"resourceType": "function", "resourceId": "audit/logging:listAuditLogs"}),
            ),
            Some(&w.bob),
        )
        .await
        .expect("bob reads his org");
    assert!(bobs["page"].as_array().expect("page").is_empty());
}
