//! Shared harness of the meetings, messaging and authorization-matrix
//! tests: a real `Runtime` over SQLite in a temporary directory with a
//! `TestClock`, the meetings, messaging and system functions, and a
//! stand-in `users` table (the people domain's own table is tested by its
//! own suite; `require_user` needs only `workosUserId` and `isActive`).
#![allow(dead_code, missing_docs)]

use std::sync::Arc;

use auth::Identity;
use database::{Database, DatabaseOptions, RandomIds, Schema, Subscription, TableDef, TestClock};
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

pub fn schema() -> Arc<Schema> {
    let mut tables = runtime::system_tables();
    tables.extend(model::system::tables());
    tables.extend(model::meetings::tables());
    tables.extend(model::messaging::tables());
    tables.push(
        TableDef::new("users")
            .any_shape()
            .index("by_workos_id", &["workosUserId"])
            .index("by_email", &["email"]),
    );
    Arc::new(Schema::builder().tables(tables).build().expect("schema"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewUser {
    subject: String,
    email: String,
    display_name: String,
    org_id: Option<String>,
}

#[derive(Deserialize)]
struct Table {
    table: String,
}

#[derive(Deserialize)]
struct UserId {
    id: String,
}

pub fn registry() -> Registry {
    let mut r = Registry::new();
    model::system::register(&mut r);
    model::meetings::register(&mut r);
    model::messaging::register(&mut r);
    r.register(
        FunctionDef::new("test/users:create", Visibility::Internal)
            .args(v::object([
                ("subject", v::string()),
                ("email", v::string()),
                ("displayName", v::string()),
                ("orgId", v::optional(v::string())),
            ]))
            .mutation(|ctx: MutationCtx, a: NewUser| async move {
                let mut doc = json!({
                    "workosUserId": a.subject,
                    "email": a.email,
                    "displayName": a.display_name,
                    "isActive": true,
                });
                if let Some(org) = a.org_id {
                    doc["orgId"] = json!(org);
                }
                Ok(ctx.db.insert("users", doc).await?.encode())
            }),
    );
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

pub fn identity(subject: &str, email: &str, org: Option<&str>, role: &str) -> Arc<Identity> {
    let mut claims = json!({
        "sub": subject,
        "iss": "https://api.workos.com/",
        "email": email,
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

    /// Provisions a user (an active `users` row) with a token in `org`
    /// with org role `role` (`admin` or `member`).
    pub async fn user(&self, name: &'static str, org: Option<&str>, role: &str) -> TestUser {
        let subject = format!("user_{name}");
        let email = format!("{name}@example.com");
        let mut args = json!({"subject": subject, "email": email, "displayName": name});
        if let Some(org) = org {
            args["orgId"] = json!(org);
        }
        let id = self
            .internal_mutation("test/users:create", args)
            .await
            .expect("create user");
        TestUser {
            name,
            id: id.as_str().expect("id").to_owned(),
            identity: identity(&subject, &email, org, role),
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
