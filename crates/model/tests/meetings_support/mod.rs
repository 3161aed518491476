//! Shared harness of the meetings, messaging and authorization-matrix
//! tests: a real `Runtime` over SQLite in a temporary directory with a
//! `TestClock`, the product's schema and functions, and users signed in
//! through `users/mutations:upsertUser` from their token.
#![allow(dead_code, missing_docs)]

use std::sync::Arc;

use auth::Identity;
use database::{Database, DatabaseOptions, RandomIds, Schema, Subscription, TestClock};
use errors::{Error, ErrorCode, Result};
use persistence_sqlite::{SqliteOptions, SqlitePersistence};
use runtime::{
    FunctionDef, FunctionKind, MutationCtx, QueryCtx, QueryOutcome, Registry, Runtime,
    RuntimeConfig, Visibility,
};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use values::{Value, v};

/// 2026-01-15T09:30:00Z.
pub const T0_MS: u64 = 1_768_469_400_000;
pub const ORG_A: &str = "org_01JH7ZM2V8K4R6T1Y3B5N7Q9WX";
pub const ORG_B: &str = "org_01JH8B4D6F8H0K2M4P6R8T0V2X";

/// The product's schema (the people domain's real `users` table included).
pub fn schema() -> Arc<Schema> {
    Arc::new(model::schema().expect("schema"))
}

#[derive(Deserialize)]
struct Table {
    table: String,
}

#[derive(Deserialize)]
struct UserId {
    id: String,
}

/// Every product function (users are provisioned through
/// `users/mutations:upsertUser`, as the web app does) plus test helpers.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    model::register(&mut r, model::ModelOptions::default());
    r.register(
        FunctionDef::new("test/users:deactivate", Visibility::Internal)
            .args(v::object([("id", v::string())]))
            .mutation(|ctx: MutationCtx, a: UserId| async move {
                let id = ctx
                    .db
                    .normalize_id("users", &a.id)
                    .await
                    .ok_or_else(|| Error::validation("bad id"))?;
                ctx.db.patch(id, json!({ "isActive": false })).await?;
                Ok(Value::Null)
            }),
    );
    r.register(
        FunctionDef::new("test/inspect:docs", Visibility::Internal)
            .args(v::object([("table", v::string())]))
            .query(|ctx: QueryCtx, a: Table| async move {
                let docs = ctx.db.query(&a.table).collect().await?;
                Ok(Value::Array(
                    docs.into_iter().map(|d| d.into_value()).collect(),
                ))
            }),
    );
    r
}

/// A signed-in test user.
#[derive(Clone)]
pub struct TestUser {
    pub name: &'static str,
    pub id: String,
    pub identity: Arc<Identity>,
}

pub fn identity(
    subject: &str,
    email: &str,
    name: &str,
    org: Option<&str>,
    role: &str,
) -> Arc<Identity> {
    let mut claims = json!({
        "sub": subject,
        "iss": "https://api.workos.com/",
        "email": email,
        "name": name,
        "role": role,
    });
    if let Some(org) = org {
        claims["org_id"] = json!(org);
    }
    let Json::Object(map) = claims else {
        unreachable!()
    };
    Arc::new(Identity::from_claims(map))
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub clock: Arc<TestClock>,
    pub rt: Runtime,
}

pub fn to_value(j: Json) -> Value {
    Value::from_json(j).expect("valid Convex JSON")
}

impl Env {
    pub async fn new() -> Self {
        Self::with_registry(registry()).await
    }

    pub async fn with_registry(registry: Registry) -> Self {
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
        let rt = Runtime::new(db, registry, RuntimeConfig::default());
        Self { dir, clock, rt }
    }

    /// Signs a user in (`users/mutations:upsertUser` from the token) with
    /// a token in `org` with org role `role` (`admin` or `member`).
    pub async fn user(&self, name: &'static str, org: Option<&str>, role: &str) -> TestUser {
        let subject = format!("user_{name}");
        let email = format!("{name}@example.com");
        let identity = identity(&subject, &email, name, org, role);
        let spec = self
            .rt
            .resolve_public("users/mutations:upsertUser", Some(FunctionKind::Mutation))
            .expect("upsertUser");
        let id = self
            .rt
            .run_mutation(
                &spec,
                to_value(json!({})),
                Some(Arc::clone(&identity)),
                None,
            )
            .await
            .result
            .expect("upsertUser");
        TestUser {
            name,
            id: id.as_str().expect("id").to_owned(),
            identity,
        }
    }

    pub async fn call(
        &self,
        who: Option<&TestUser>,
        kind: FunctionKind,
        path: &str,
        args: Json,
    ) -> Result<Json> {
        // Public functions only, as a client would reach them.
        let spec = self.rt.resolve_public(path, Some(kind))?;
        let identity = who.map(|u| Arc::clone(&u.identity));
        let args = to_value(args);
        let result = match kind {
            FunctionKind::Query => {
                self.rt
                    .run_query(&spec, args, identity, None, None)
                    .await
                    .result
            }
            FunctionKind::Mutation => {
                self.rt
                    .run_mutation(&spec, args, identity, None)
                    .await
                    .result
            }
            FunctionKind::Action => self.rt.run_action(&spec, args, identity).await.result,
        };
        result.map(|v| v.to_json())
    }

    pub async fn query(&self, who: &TestUser, path: &str, args: Json) -> Result<Json> {
        self.call(Some(who), FunctionKind::Query, path, args).await
    }

    pub async fn mutation(&self, who: &TestUser, path: &str, args: Json) -> Result<Json> {
        self.call(Some(who), FunctionKind::Mutation, path, args)
            .await
    }

    pub async fn internal_mutation(&self, path: &str, args: Json) -> Result<Json> {
        self.rt
            .call(FunctionKind::Mutation, path, to_value(args), None)
            .await
            .map(|v| v.to_json())
    }

    pub async fn internal_query(&self, path: &str, args: Json) -> Result<Json> {
        self.rt
            .call(FunctionKind::Query, path, to_value(args), None)
            .await
            .map(|v| v.to_json())
    }

    /// Every document of `table`, in creation order.
    pub async fn docs(&self, table: &str) -> Vec<Json> {
        match self
            .internal_query("test/inspect:docs", json!({ "table": table }))
            .await
            .expect("inspect")
        {
            Json::Array(items) => items,
            other => panic!("unexpected {other}"),
        }
    }

    /// Runs a query as `who` and subscribes its read set.
    pub async fn subscribe(
        &self,
        who: &TestUser,
        path: &str,
        args: Json,
    ) -> (QueryOutcome, Subscription) {
        let spec = self
            .rt
            .resolve_public(path, Some(FunctionKind::Query))
            .expect("query");
        let out = self
            .rt
            .run_query(
                &spec,
                to_value(args),
                Some(Arc::clone(&who.identity)),
                None,
                None,
            )
            .await;
        let sub = self
            .rt
            .database()
            .subscriptions()
            .subscribe(Arc::clone(&out.read_set), out.ts);
        (out, sub)
    }

    /// Creates a meeting hosted by `host` with the given other members.
    pub async fn meeting(&self, host: &TestUser, members: &[(&TestUser, &str)]) -> String {
        let created = self
            .mutation(
                host,
                "meetings/lifecycle:createMeeting",
                json!({ "title": "Weekly sync" }),
            )
            .await
            .expect("createMeeting");
        let meeting = created["meetingId"].as_str().expect("meetingId").to_owned();
        for (user, role) in members {
            self.mutation(
                host,
                "meetings/lifecycle:addParticipant",
                json!({ "meetingId": meeting, "userId": user.id, "role": role }),
            )
            .await
            .expect("addParticipant");
        }
        meeting
    }

    pub async fn start(&self, host: &TestUser, meeting: &str) {
        self.mutation(
            host,
            "meetings/lifecycle:startMeeting",
            json!({ "meetingId": meeting }),
        )
        .await
        .expect("startMeeting");
    }
}

/// Asserts that `result` failed with `code` and returns the error.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(result: Result<T>, code: ErrorCode) -> Error {
    match result {
        Ok(v) => panic!("expected {code}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code(), code, "unexpected error: {e}");
            e
        }
    }
}
