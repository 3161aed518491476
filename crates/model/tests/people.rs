//! Users, profiles, settings and interests through a real `Runtime` over
//! SQLite with a `TestClock`, called as clients call them (public functions
//! are resolved as public, with identities built from token claims).
//!
//! Tests named `defect_*` are regressions for the original backend's defects
//! in these domains (../shared/reference/original-backend-part1.md §8).
#![allow(missing_docs)]

use std::sync::{Arc, Mutex};

use auth::Identity;
use database::{Database, DatabaseOptions, RandomIds, TestClock};
use errors::{ErrorCode, Result};
use persistence_sqlite::{SqliteOptions, SqlitePersistence};
use runtime::{FunctionKind, Registry, Runtime, RuntimeConfig};
use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// 2026-01-15T09:30:00Z.
const T0_MS: u64 = 1_768_469_400_000;
const ORG_A: &str = "org_01JH7ZM2V8K4R6T1Y3B5N7Q9WX";
const ORG_B: &str = "org_01JH8B4D6F8H0K2M4P6R8T0V2X";

// ---------------------------------------------------------------------------
// Harness

struct Env {
    _dir: tempfile::TempDir,
    clock: Arc<TestClock>,
    rt: Runtime,
}

impl Env {
    async fn new() -> Self {
        Self::with_registry(|_| {}).await
    }

    async fn with_registry(extra: impl FnOnce(&mut Registry)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let persistence =
            SqlitePersistence::open(dir.path(), SqliteOptions::default()).expect("sqlite");
        let clock = TestClock::at_ms(T0_MS);
        let db = Database::open(
            persistence,
            Arc::new(model::schema().expect("schema")),
            Arc::clone(&clock) as Arc<dyn database::Clock>,
            Arc::new(RandomIds),
            DatabaseOptions::default(),
        )
        .await
        .expect("database");
        let mut registry = Registry::new();
        model::register(&mut registry, model::ModelOptions::default());
        extra(&mut registry);
        let rt = Runtime::new(db, registry, RuntimeConfig::default());
        model::on_start(&rt).await.expect("start-up hook");
        Self {
            _dir: dir,
            clock,
            rt,
        }
    }

    /// Calls a *public* function as a client would.
    async fn call(
        &self,
        who: Option<&Arc<Identity>>,
        kind: FunctionKind,
        path: &str,
        args: Json,
    ) -> Result<Json> {
        let spec = self.rt.resolve_public(path, Some(kind))?;
        let args = values::Value::from_json(args)?;
        let who = who.cloned();
        let out = match kind {
            FunctionKind::Query => self.rt.run_query(&spec, args, who, None, None).await.result,
            FunctionKind::Mutation => self.rt.run_mutation(&spec, args, who, None).await.result,
            FunctionKind::Action => self.rt.run_action(&spec, args, who).await.result,
        };
        out.map(|v| v.to_clean_json())
    }

    async fn q(&self, who: Option<&Arc<Identity>>, path: &str, args: Json) -> Result<Json> {
        self.call(who, FunctionKind::Query, path, args).await
    }

    async fn m(&self, who: Option<&Arc<Identity>>, path: &str, args: Json) -> Result<Json> {
        self.call(who, FunctionKind::Mutation, path, args).await
    }

    /// Runs an internal function.
    async fn internal(&self, kind: FunctionKind, path: &str, args: Json) -> Json {
        self.rt
            .call(
                kind,
                path,
                values::Value::from_json(args).expect("args"),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .to_clean_json()
    }

    /// Every document of a table (through an internal read).
    async fn docs(&self, table: &str) -> Vec<Json> {
        let mut tx = self.rt.database().begin(false).await.expect("tx");
        let schema = Arc::clone(tx.schema());
        let t = schema.require_table(table).expect("table");
        let index = t.index("by_creation_time").expect("index").clone();
        let (range, bucket) = database::IndexRange::all().compile(&index).expect("range");
        tx.scan(
            t,
            &index,
            &range,
            bucket,
            database::Order::Asc,
            None,
            10_000,
        )
        .await
        .expect("scan")
        .rows
        .into_iter()
        .map(|(_, d)| d.into_value().to_clean_json())
        .collect()
    }

    /// Signs in (`upsertUser` with no arguments); returns the user id.
    async fn sign_in(&self, who: &Arc<Identity>) -> String {
        self.m(Some(who), "users/mutations:upsertUser", json!({}))
            .await
            .expect("upsertUser")
            .as_str()
            .expect("id")
            .to_owned()
    }
}

fn identity(claims: Json) -> Arc<Identity> {
    let Json::Object(mut map) = claims else {
        panic!("claims must be an object")
    };
    map.entry("iss")
        .or_insert_with(|| json!("https://api.workos.com/user_management/client_test"));
    Arc::new(Identity::from_claims(map))
}

/// A token with every claim (dev tokens, WorkOS JWT templates).
fn full(
    sub: &str,
    email: &str,
    name: &str,
    org: Option<&str>,
    role: Option<&str>,
) -> Arc<Identity> {
    let mut c = json!({"sub": sub, "email": email, "name": name});
    if let Some(org) = org {
        c["org_id"] = json!(org);
    }
    if let Some(role) = role {
        c["role"] = json!(role);
    }
    identity(c)
}

fn ada() -> Arc<Identity> {
    full(
        "user_ada",
        "ada@example.com",
        "Ada Lovelace",
        Some(ORG_A),
        Some("admin"),
    )
}

fn grace() -> Arc<Identity> {
    full(
        "user_grace",
        "grace@example.com",
        "Grace Hopper",
        Some(ORG_A),
        Some("member"),
    )
}

fn mallory() -> Arc<Identity> {
    full(
        "user_mallory",
        "mallory@example.com",
        "Mallory",
        Some(ORG_B),
        Some("admin"),
    )
}

fn code(r: &Result<Json>) -> Option<ErrorCode> {
    r.as_ref().err().map(|e| e.code())
}

fn onboarding(key: &str) -> Json {
    json!({
        "age": 36,
        "gender": "female",
        "field": "Mathematics",
        "jobTitle": "Lead Engineer",
        "company": "Analytical Engines Ltd",
        "bio": "Analytical engine programmer and mathematician.",
        "interests": [
            {"id": "ai-ml", "name": "AI / ML", "category": "academic"},
            {"id": "poetry", "name": "Poetry", "category": "personal"}
        ],
        "idempotencyKey": key
    })
}

fn usage(catalog: &[Json], key: &str) -> f64 {
    catalog
        .iter()
        .find(|d| d["key"] == key)
        .and_then(|d| d["usageCount"].as_f64())
        .unwrap_or(-1.0)
}

// ---------------------------------------------------------------------------
// Provisioning

#[tokio::test]
async fn upsert_user_provisions_the_caller_from_token_claims() {
    let env = Env::new().await;
    let ada = ada();
    let id = env.sign_in(&ada).await;
    let me = env
        .q(Some(&ada), "users/queries:getCurrentUser", json!({}))
        .await
        .unwrap();
    assert_eq!(me["_id"], id);
    assert_eq!(me["workosUserId"], "user_ada");
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["emailVerified"], true);
    assert_eq!(me["profileSource"], "token");
    assert_eq!(me["displayName"], "Ada Lovelace");
    assert_eq!(me["orgId"], ORG_A);
    assert_eq!(me["orgRole"], "admin");
    assert_eq!(me["isActive"], true);
    assert_eq!(me["lastSeenAt"], T0_MS as f64);
    // A default profile exists.
    let profile = env
        .q(
            Some(&ada),
            "profiles/queries:getCurrentUserProfile",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(profile["displayName"], "Ada Lovelace");
    assert_eq!(profile["userId"], id);
    // Signing in again updates, never duplicates.
    env.clock.advance_ms(60_000);
    assert_eq!(env.sign_in(&ada).await, id);
    assert_eq!(env.docs("users").await.len(), 1);
    assert_eq!(env.docs("profiles").await.len(), 1);
    let me = env
        .q(Some(&ada), "users/queries:getCurrentUser", json!({}))
        .await
        .unwrap();
    assert_eq!(me["lastSeenAt"], (T0_MS + 60_000) as f64);
    // The web app's call shape (arguments equal to the claims) works.
    let same = env
        .m(
            Some(&ada),
            "users/mutations:upsertUser",
            json!({"workosUserId": "user_ada", "email": "ADA@example.com", "displayName": "Ada Lovelace",
                   "orgId": ORG_A, "orgRole": "admin"}),
        )
        .await
        .unwrap();
    assert_eq!(same, id);
    // Signed out or not provisioned: getCurrentUser is null, not an error.
    assert_eq!(
        env.q(None, "users/queries:getCurrentUser", json!({}))
            .await
            .unwrap(),
        Json::Null
    );
    assert_eq!(
        env.q(Some(&grace()), "users/queries:getCurrentUser", json!({}))
            .await
            .unwrap(),
        Json::Null
    );
}

#[tokio::test]
async fn defect_upsert_user_without_jwt() {
    let env = Env::new().await;
    let victim = ada();
    env.sign_in(&victim).await;
    let r = env
        .m(
            None,
            "users/mutations:upsertUser",
            json!({"workosUserId": "user_ada", "email": "evil@example.com", "orgRole": "admin"}),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::Unauthorized));
    let r = env
        .m(
            None,
            "users/mutations:upsertUser",
            json!({"workosUserId": "user_new", "email": "new@example.com"}),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::Unauthorized));
    let users = env.docs("users").await;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["email"], "ada@example.com");
}

#[tokio::test]
async fn defect_upsert_user_for_another_workos_id() {
    let env = Env::new().await;
    env.sign_in(&ada()).await;
    let r = env
        .m(
            Some(&mallory()),
            "users/mutations:upsertUser",
            json!({"workosUserId": "user_ada", "email": "mallory@example.com"}),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::Forbidden));
    assert_eq!(env.docs("users").await.len(), 1);
}

#[tokio::test]
async fn defect_org_role_from_client_args() {
    let env = Env::new().await;
    // A member claiming admin in the arguments is refused…
    let member = full(
        "user_m",
        "m@example.com",
        "Member",
        Some(ORG_A),
        Some("member"),
    );
    let r = env
        .m(
            Some(&member),
            "users/mutations:upsertUser",
            json!({"email": "m@example.com", "orgRole": "admin"}),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::Forbidden));
    let r = env
        .m(
            Some(&member),
            "users/mutations:upsertUser",
            json!({"orgId": ORG_B}),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::Forbidden));
    // …and the token decides: role and org are stored from its claims.
    let id = env.sign_in(&member).await;
    let me = env
        .q(Some(&member), "users/queries:getCurrentUser", json!({}))
        .await
        .unwrap();
    assert_eq!(
        (me["orgId"].clone(), me["orgRole"].clone()),
        (json!(ORG_A), json!("member"))
    );
    // The member can't use admin powers on another user of the org.
    let grace = grace();
    let grace_id = env.sign_in(&grace).await;
    let r = env
        .m(
            Some(&member),
            "users/mutations:deactivateUser",
            json!({"userId": grace_id}),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::Forbidden));
    // A token without org claims clears the stored org (no argument can set it).
    let no_org = full("user_m", "m@example.com", "Member", None, None);
    assert_eq!(env.sign_in(&no_org).await, id);
    let me = env
        .q(Some(&no_org), "users/queries:getCurrentUser", json!({}))
        .await
        .unwrap();
    assert!(
        me.get("orgId").is_none() && me.get("orgRole").is_none(),
        "{me}"
    );
}

#[tokio::test]
async fn defect_admin_of_any_org_acts_on_every_user() {
    let env = Env::new().await;
    let (ada, grace, mallory) = (ada(), grace(), mallory());
    env.sign_in(&ada).await;
    let grace_id = env.sign_in(&grace).await;
    env.sign_in(&mallory).await;
    // Mallory is an admin, of another organization.
    for (path, args) in [
        (
            "users/mutations:updateUserProfile",
            json!({"userId": grace_id, "bio": "hacked bio text"}),
        ),
        (
            "users/mutations:updateUserInterests",
            json!({"userId": grace_id, "interests": ["ai-ml"]}),
        ),
        (
            "users/mutations:deactivateUser",
            json!({"userId": grace_id}),
        ),
    ] {
        let r = env.m(Some(&mallory), path, args).await;
        assert_eq!(code(&r), Some(ErrorCode::Forbidden), "{path}");
    }
    // Ada administers Grace's organization: allowed, and audited.
    env.m(
        Some(&ada),
        "users/mutations:updateUserProfile",
        json!({"userId": grace_id, "bio": "Compiler pioneer."}),
    )
    .await
    .unwrap();
    env.m(
        Some(&ada),
        "users/mutations:updateUserInterests",
        json!({"userId": grace_id, "interests": ["design", "ai-ml", "design"]}),
    )
    .await
    .unwrap();
    let profile = env
        .q(
            Some(&grace),
            "profiles/queries:getCurrentUserProfile",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(profile["bio"], "Compiler pioneer.");
    let catalog = env.docs("interests").await;
    assert_eq!(usage(&catalog, "design"), 1.0);
    assert_eq!(usage(&catalog, "ai-ml"), 1.0);
    let actions: Vec<Json> = env
        .docs("auditLogs")
        .await
        .into_iter()
        .map(|d| d["action"].clone())
        .collect();
    assert!(
        actions.contains(&json!("user.profile_updated_by_admin")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&json!("user.interests_updated_by_admin")),
        "{actions:?}"
    );
    // Unknown keys are refused with the list.
    let r = env
        .m(
            Some(&grace),
            "users/mutations:updateUserInterests",
            json!({"userId": grace_id, "interests": ["nope", "ai-ml", "zilch"]}),
        )
        .await;
    let e = r.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ValidationError);
    assert_eq!(e.message(), "Invalid interests: nope, zilch");
}

#[tokio::test]
async fn email_comes_from_the_token_else_the_record_else_unverified_arguments() {
    let env = Env::new().await;
    // A WorkOS access token without email or name (the default).
    let bare = identity(json!({"sub": "user_bare", "org_id": ORG_A, "role": "member"}));
    // No source and no argument: a new user can't be created.
    let r = env
        .m(Some(&bare), "users/mutations:upsertUser", json!({}))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::ValidationError));
    // Arguments fill the gap, marked unverified.
    env.m(
        Some(&bare),
        "users/mutations:upsertUser",
        json!({"email": "bare@example.com", "displayName": "Bare Bones"}),
    )
    .await
    .unwrap();
    let me = env
        .q(Some(&bare), "users/queries:getCurrentUser", json!({}))
        .await
        .unwrap();
    assert_eq!(me["email"], "bare@example.com");
    assert_eq!(me["emailVerified"], false);
    assert_eq!(me["profileSource"], "client");
    assert_eq!(me["displayName"], "Bare Bones");
    // No API key configured: nothing was scheduled.
    assert!(
        env.docs("_scheduled_functions")
            .await
            .iter()
            .all(|j| j["name"] != "users/workos:syncUserFromApi")
    );

    // Arguments that disagree with the token are refused.
    let ada = ada();
    for args in [
        json!({"email": "someone.else@example.com"}),
        json!({"displayName": "Not Ada"}),
    ] {
        let r = env.m(Some(&ada), "users/mutations:upsertUser", args).await;
        assert_eq!(code(&r), Some(ErrorCode::Forbidden));
    }

    // A WorkOS record (from a webhook) wins over the arguments.
    env.internal(
        FunctionKind::Mutation,
        "users/workos:applyWebhookEvent",
        json!({"eventId": "event_1", "event": "user.created", "signatureTs": T0_MS as f64,
               "user": {"id": "user_rec", "email": "rec@example.com", "emailVerified": true,
                        "firstName": "Rec", "lastName": "Ord", "updatedAt": "2026-01-15T09:00:00.000Z"}}),
    )
    .await;
    let rec = identity(json!({"sub": "user_rec"}));
    env.m(
        Some(&rec),
        "users/mutations:upsertUser",
        json!({"email": "typed@example.com", "displayName": "Typed"}),
    )
    .await
    .unwrap();
    let me = env
        .q(Some(&rec), "users/queries:getCurrentUser", json!({}))
        .await
        .unwrap();
    assert_eq!(me["email"], "rec@example.com");
    assert_eq!(me["emailVerified"], true);
    assert_eq!(me["profileSource"], "workos");
    assert_eq!(me["displayName"], "Rec Ord");
}

/// A one-route fake of the WorkOS user API: `GET /user_management/users/{id}`
/// with `Authorization: Bearer sk_test_key`. Records each request line and
/// its authorization header.
async fn fake_workos_api(user: Json) -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let text = String::from_utf8_lossy(&buf).to_string();
            let line = text.lines().next().unwrap_or_default().to_owned();
            let auth = text
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("authorization")
                        .then(|| v.trim().to_owned())
                })
                .unwrap_or_default();
            log.lock().unwrap().push((line.clone(), auth.clone()));
            let want = format!(
                "GET /user_management/users/{} ",
                user["id"].as_str().unwrap()
            );
            let (status, body) = if auth != "Bearer sk_test_key" {
                ("401 Unauthorized", json!({"message": "Unauthorized"}))
            } else if line.starts_with(&want) {
                ("200 OK", user.clone())
            } else {
                (
                    "404 Not Found",
                    json!({"message": "User not found", "code": "entity_not_found"}),
                )
            };
            let body = body.to_string();
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    (base, seen)
}

#[tokio::test]
async fn email_from_the_workos_user_api_when_an_api_key_is_configured() {
    let (base, seen) = fake_workos_api(json!({
        "object": "user", "id": "user_api", "email": "api@example.com", "email_verified": true,
        "first_name": "Api", "last_name": "User", "profile_picture_url": "https://img.example.com/api.png",
        "created_at": "2026-01-15T09:00:00.000Z", "updated_at": "2026-01-15T09:00:00.000Z"
    }))
    .await;
    let env = Env::with_registry(|r| {
        model::users::workos::register_api(
            r,
            model::users::workos::WorkosApi {
                api_key: "sk_test_key".into(),
                api_base: base,
            },
        );
    })
    .await;
    let who = identity(json!({"sub": "user_api"}));
    // Only the client's word exists at sign-in: stored unverified, and the
    // API read is scheduled.
    env.m(
        Some(&who),
        "users/mutations:upsertUser",
        json!({"email": "typed@example.com"}),
    )
    .await
    .unwrap();
    let me = env
        .q(Some(&who), "users/queries:getCurrentUser", json!({}))
        .await
        .unwrap();
    assert_eq!(me["profileSource"], "client");
    env.rt.scheduler_tick(true).await.expect("tick");
    let me = env
        .q(Some(&who), "users/queries:getCurrentUser", json!({}))
        .await
        .unwrap();
    assert_eq!(me["email"], "api@example.com", "{me}");
    assert_eq!(me["emailVerified"], true);
    assert_eq!(me["profileSource"], "workos");
    assert_eq!(me["displayName"], "Api User");
    assert_eq!(me["avatarUrl"], "https://img.example.com/api.png");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0]
            .0
            .starts_with("GET /user_management/users/user_api ")
    );
    assert_eq!(seen[0].1, "Bearer sk_test_key");
    // From now on the verified record is used at sign-in.
    env.m(
        Some(&who),
        "users/mutations:upsertUser",
        json!({"email": "typed@example.com"}),
    )
    .await
    .unwrap();
    let me = env
        .q(Some(&who), "users/queries:getCurrentUser", json!({}))
        .await
        .unwrap();
    assert_eq!(me["email"], "api@example.com");
}

// ---------------------------------------------------------------------------
// Reading other users

#[tokio::test]
async fn defect_get_user_by_id_without_auth() {
    let env = Env::new().await;
    let (ada, grace, mallory) = (ada(), grace(), mallory());
    let ada_id = env.sign_in(&ada).await;
    let grace_id = env.sign_in(&grace).await;
    env.sign_in(&mallory).await;
    let args = json!({"userId": grace_id});
    let r = env.q(None, "users/queries:getUserById", args.clone()).await;
    assert_eq!(code(&r), Some(ErrorCode::Unauthorized));
    // Another organization's user sees the public view only.
    let seen = env
        .q(Some(&mallory), "users/queries:getUserById", args.clone())
        .await
        .unwrap();
    assert_eq!(
        seen,
        json!({"_id": grace_id, "displayName": "Grace Hopper", "isActive": true})
    );
    // The user and the admins of the user's organization see everything.
    for who in [&grace, &ada] {
        let full = env
            .q(Some(who), "users/queries:getUserById", args.clone())
            .await
            .unwrap();
        assert_eq!(full["email"], "grace@example.com");
        assert_eq!(full["workosUserId"], "user_grace");
    }
    // A member of the same organization does not see the admin's email.
    let seen = env
        .q(
            Some(&grace),
            "users/queries:getUserById",
            json!({"userId": ada_id}),
        )
        .await
        .unwrap();
    assert!(seen.get("email").is_none(), "{seen}");
    // getUserProfile: org fields only within the organization.
    let other_org = env
        .q(Some(&mallory), "users/queries:getUserProfile", args.clone())
        .await
        .unwrap();
    assert!(other_org.get("orgId").is_none(), "{other_org}");
    let same_org = env
        .q(Some(&ada), "users/queries:getUserProfile", args.clone())
        .await
        .unwrap();
    assert_eq!(same_org["orgId"], ORG_A);
    assert_eq!(same_org["orgRole"], "member");
    let r = env.q(None, "users/queries:getUserProfile", args).await;
    assert_eq!(code(&r), Some(ErrorCode::Unauthorized));
}

#[tokio::test]
async fn defect_privacy_settings_not_enforced() {
    let env = Env::new().await;
    let (ada, grace) = (ada(), grace());
    env.sign_in(&ada).await;
    let grace_id = env.sign_in(&grace).await;
    env.m(
        Some(&grace),
        "profiles/mutations:updateProfile",
        json!({"bio": "Compiler pioneer.", "age": 85, "linkedinUrl": "https://www.linkedin.com/in/grace"}),
    )
    .await
    .unwrap();
    let args = json!({"userId": grace_id});
    let public = env
        .q(
            Some(&ada),
            "profiles/queries:getProfileByUserIdPublic",
            args.clone(),
        )
        .await
        .unwrap();
    assert_eq!(public["bio"], "Compiler pioneer.");
    assert!(
        public.get("age").is_none() && public.get("linkedinUrl").is_none(),
        "{public}"
    );

    // Grace makes her profile private: others read nothing, she still does.
    env.m(
        Some(&grace),
        "settings/mutations:updateSettings",
        json!({"profileVisibility": false}),
    )
    .await
    .unwrap();
    let hidden = env
        .q(
            Some(&ada),
            "profiles/queries:getProfileByUserIdPublic",
            args.clone(),
        )
        .await
        .unwrap();
    assert_eq!(hidden, Json::Null);
    let own = env
        .q(
            Some(&grace),
            "profiles/queries:getProfileByUserIdPublic",
            args.clone(),
        )
        .await
        .unwrap();
    assert_eq!(own["bio"], "Compiler pioneer.");
    let settings = env
        .q(
            Some(&grace),
            "settings/queries:getCurrentUserSettings",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(settings["profileVisibility"], false);
    assert_eq!(settings["emailNotifications"], true);
    assert_eq!(settings["dataSharing"], false);

    // Activity tracking off: lastSeenAt is cleared and no longer recorded.
    env.m(
        Some(&grace),
        "settings/mutations:updateSettings",
        json!({"activityTracking": false}),
    )
    .await
    .unwrap();
    env.clock.advance_ms(1000);
    env.m(Some(&grace), "users/mutations:updateLastSeen", json!({}))
        .await
        .unwrap();
    env.sign_in(&grace).await;
    let me = env
        .q(Some(&grace), "users/queries:getCurrentUser", json!({}))
        .await
        .unwrap();
    assert!(me.get("lastSeenAt").is_none(), "{me}");
    // And back on.
    env.m(
        Some(&grace),
        "settings/mutations:updateSettings",
        json!({"activityTracking": true, "profileVisibility": true}),
    )
    .await
    .unwrap();
    env.m(Some(&grace), "users/mutations:updateLastSeen", json!({}))
        .await
        .unwrap();
    let me = env
        .q(Some(&grace), "users/queries:getCurrentUser", json!({}))
        .await
        .unwrap();
    assert_eq!(me["lastSeenAt"], (T0_MS + 1000) as f64);
    assert_eq!(env.docs("userSettings").await.len(), 1);
}

#[tokio::test]
async fn defect_list_active_users_pagination_opts_shape() {
    let env = Env::new().await;
    let (ada, grace, mallory) = (ada(), grace(), mallory());
    let ada_id = env.sign_in(&ada).await;
    let grace_id = env.sign_in(&grace).await;
    env.sign_in(&mallory).await;
    // `usePaginatedQuery` sends extra fields; they are accepted.
    let args = json!({"paginationOpts": {"numItems": 10, "cursor": null, "id": 3, "maximumRowsRead": 100}});
    let page = env
        .q(
            Some(&ada),
            "users/queries:listActiveUsersInOrg",
            args.clone(),
        )
        .await
        .unwrap();
    let ids: Vec<&Json> = page["page"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| &u["_id"])
        .collect();
    assert_eq!(ids, [&json!(grace_id), &json!(ada_id)]);
    assert_eq!(page["isDone"], true);
    assert!(page["page"][0].get("email").is_none());
    // Pages of one.
    let first = env
        .q(
            Some(&ada),
            "users/queries:listActiveUsersInOrg",
            json!({"paginationOpts": {"numItems": 1, "cursor": null}}),
        )
        .await
        .unwrap();
    assert_eq!(first["page"][0]["_id"], grace_id);
    let second = env
        .q(
            Some(&ada),
            "users/queries:listActiveUsersInOrg",
            json!({"paginationOpts": {"numItems": 1, "cursor": first["continueCursor"]}}),
        )
        .await
        .unwrap();
    assert_eq!(second["page"][0]["_id"], ada_id);
    // Mallory's organization is another one.
    let other = env
        .q(
            Some(&mallory),
            "users/queries:listActiveUsersInOrg",
            args.clone(),
        )
        .await
        .unwrap();
    assert_eq!(other["page"].as_array().unwrap().len(), 1);
    // No organization in the token: an empty last page.
    let loner = full("user_loner", "loner@example.com", "Loner", None, None);
    env.sign_in(&loner).await;
    let empty = env
        .q(
            Some(&loner),
            "users/queries:listActiveUsersInOrg",
            args.clone(),
        )
        .await
        .unwrap();
    assert_eq!(empty["page"], json!([]));
    assert_eq!(empty["isDone"], true);
    // Deactivated users leave the directory.
    env.m(
        Some(&ada),
        "users/mutations:deactivateUser",
        json!({"userId": grace_id}),
    )
    .await
    .unwrap();
    let page = env
        .q(Some(&ada), "users/queries:listActiveUsersInOrg", args)
        .await
        .unwrap();
    assert_eq!(page["page"].as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------
// Deactivation

#[tokio::test]
async fn defect_deactivated_user_not_refused() {
    let env = Env::new().await;
    let grace = grace();
    let grace_id = env.sign_in(&grace).await;
    env.m(
        Some(&grace),
        "users/mutations:deactivateUser",
        json!({"userId": grace_id}),
    )
    .await
    .unwrap();
    let calls: Vec<(FunctionKind, &str, Json)> = vec![
        (
            FunctionKind::Query,
            "users/queries:getCurrentUser",
            json!({}),
        ),
        (
            FunctionKind::Query,
            "users/queries:getUserById",
            json!({"userId": grace_id}),
        ),
        (
            FunctionKind::Query,
            "users/queries:getUserProfile",
            json!({"userId": grace_id}),
        ),
        (
            FunctionKind::Query,
            "users/queries:getOnboardingState",
            json!({}),
        ),
        (
            FunctionKind::Query,
            "users/queries:listActiveUsersInOrg",
            json!({"paginationOpts": {"numItems": 5, "cursor": null}}),
        ),
        (FunctionKind::Query, "users/queries:exportMyData", json!({})),
        (
            FunctionKind::Query,
            "profiles/queries:getCurrentUserProfile",
            json!({}),
        ),
        (
            FunctionKind::Query,
            "profiles/queries:getProfileByUserIdPublic",
            json!({"userId": grace_id}),
        ),
        (
            FunctionKind::Query,
            "settings/queries:getCurrentUserSettings",
            json!({}),
        ),
        (
            FunctionKind::Query,
            "interests/queries:listCatalog",
            json!({}),
        ),
        (
            FunctionKind::Mutation,
            "users/mutations:upsertUser",
            json!({}),
        ),
        (
            FunctionKind::Mutation,
            "users/mutations:updateLastSeen",
            json!({}),
        ),
        (
            FunctionKind::Mutation,
            "users/mutations:saveOnboarding",
            onboarding("k"),
        ),
        (
            FunctionKind::Mutation,
            "users/mutations:updateUserProfile",
            json!({"userId": grace_id, "bio": "still here"}),
        ),
        (
            FunctionKind::Mutation,
            "users/mutations:updateUserInterests",
            json!({"userId": grace_id, "interests": []}),
        ),
        (
            FunctionKind::Mutation,
            "users/mutations:deactivateUser",
            json!({"userId": grace_id}),
        ),
        (
            FunctionKind::Mutation,
            "users/mutations:deleteMyAccount",
            json!({"confirm": true}),
        ),
        (
            FunctionKind::Mutation,
            "profiles/mutations:updateProfile",
            json!({"bio": "x"}),
        ),
        (
            FunctionKind::Mutation,
            "profiles/mutations:createProfile",
            json!({"displayName": "G"}),
        ),
        (
            FunctionKind::Mutation,
            "settings/mutations:updateSettings",
            json!({"smsNotifications": true}),
        ),
    ];
    for (kind, path, args) in calls {
        let r = env.call(Some(&grace), kind, path, args).await;
        assert_eq!(code(&r), Some(ErrorCode::Forbidden), "{path}: {r:?}");
    }
    let audit = env.docs("auditLogs").await;
    assert!(audit.iter().any(|a| a["action"] == "user.deactivated"));
    // An admin of her organization sees her as inactive.
    let ada = ada();
    env.sign_in(&ada).await;
    let seen = env
        .q(
            Some(&ada),
            "users/queries:getUserById",
            json!({"userId": grace_id}),
        )
        .await
        .unwrap();
    assert_eq!(seen["isActive"], false);
    let r = env
        .m(
            Some(&ada),
            "users/mutations:deactivateUser",
            json!({"userId": grace_id}),
        )
        .await;
    assert_eq!(r.unwrap_err().message(), "User is already deactivated");
}

// ---------------------------------------------------------------------------
// Onboarding

#[tokio::test]
async fn save_onboarding_writes_profile_interests_flags_and_audit() {
    let env = Env::new().await;
    let ada = ada();
    let ada_id = env.sign_in(&ada).await;
    let before = env
        .q(Some(&ada), "users/queries:getOnboardingState", json!({}))
        .await
        .unwrap();
    assert_eq!(before["onboardingComplete"], false);
    assert_eq!(before["profileExists"], true);
    let out = env
        .m(
            Some(&ada),
            "users/mutations:saveOnboarding",
            onboarding("form-1"),
        )
        .await
        .unwrap();
    assert_eq!(out["userId"], ada_id);
    assert_eq!(out["interestsCount"], 2.0);
    assert_eq!(out["onboardingCompleted"], true);
    let state = env
        .q(Some(&ada), "users/queries:getOnboardingState", json!({}))
        .await
        .unwrap();
    assert_eq!(state["onboardingComplete"], true);
    assert_eq!(state["profileId"], out["profileId"]);
    assert_eq!(state["completedAt"], T0_MS as f64);
    let profile = env
        .q(
            Some(&ada),
            "profiles/queries:getCurrentUserProfile",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(profile["jobTitle"], "Lead Engineer");
    assert_eq!(profile["age"], 36.0);
    assert_eq!(profile["gender"], "female");
    // The custom interest exists, is Ada's, and only Ada lists it.
    let catalog = env.docs("interests").await;
    let poetry = catalog
        .iter()
        .find(|d| d["key"] == "custom:poetry")
        .unwrap();
    assert_eq!(poetry["category"], "custom");
    assert_eq!(poetry["createdBy"], ada_id);
    assert_eq!(usage(&catalog, "ai-ml"), 1.0);
    let mine = env
        .q(
            Some(&ada),
            "interests/queries:listCatalog",
            json!({"category": "custom"}),
        )
        .await
        .unwrap();
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let grace = grace();
    env.sign_in(&grace).await;
    let theirs = env
        .q(Some(&grace), "interests/queries:listCatalog", json!({}))
        .await
        .unwrap();
    assert_eq!(theirs.as_array().unwrap().len(), 6, "{theirs}");
    let user_interests = env
        .internal(
            FunctionKind::Query,
            "interests/queries:getUserInterests",
            json!({"userId": ada_id}),
        )
        .await;
    assert_eq!(user_interests.as_array().unwrap().len(), 2);
    // Audited.
    let audit = env.docs("auditLogs").await;
    let entry = audit
        .iter()
        .find(|a| a["action"] == "onboarding.save")
        .unwrap();
    assert_eq!(entry["actorUserId"], ada_id);
    assert_eq!(entry["orgId"], ORG_A);

    // Validation.
    let mut bad = onboarding("form-2");
    bad["age"] = json!(12);
    let e = env
        .m(Some(&ada), "users/mutations:saveOnboarding", bad)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ValidationError);
    assert_eq!(e.metadata().unwrap()["field"], "age");
    let mut bad = onboarding("form-3");
    bad["bio"] = json!("too short");
    let e = env
        .m(Some(&ada), "users/mutations:saveOnboarding", bad)
        .await
        .unwrap_err();
    assert_eq!(e.metadata().unwrap()["field"], "bio");
    let mut bad = onboarding("form-4");
    bad["interests"] = json!([{"id": "quantum", "name": "Quantum", "category": "academic"}]);
    let e = env
        .m(Some(&ada), "users/mutations:saveOnboarding", bad)
        .await
        .unwrap_err();
    assert_eq!(e.message(), "Invalid interest key: quantum");
    let mut bad = onboarding("form-5");
    bad["interests"] = json!((0..6)
        .map(|i| json!({"id": format!("c{i}"), "name": format!("Custom {i}"), "category": "personal"}))
        .collect::<Vec<_>>());
    let e = env
        .m(Some(&ada), "users/mutations:saveOnboarding", bad)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ValidationError);
    let mut bad = onboarding("form-6");
    bad["linkedinUrl"] = json!("https://evil.example.com/in/ada");
    let e = env
        .m(Some(&ada), "users/mutations:saveOnboarding", bad)
        .await
        .unwrap_err();
    assert_eq!(e.metadata().unwrap()["field"], "linkedinUrl");
}

#[tokio::test]
async fn defect_save_onboarding_idempotency_key_not_per_user() {
    let env = Env::new().await;
    let (ada, grace) = (ada(), grace());
    let ada_id = env.sign_in(&ada).await;
    let grace_id = env.sign_in(&grace).await;
    // The web app's key is a hash of the form only: both send the same one.
    let first = env
        .m(
            Some(&ada),
            "users/mutations:saveOnboarding",
            onboarding("djb2-5381"),
        )
        .await
        .unwrap();
    let second = env
        .m(
            Some(&grace),
            "users/mutations:saveOnboarding",
            onboarding("djb2-5381"),
        )
        .await
        .unwrap();
    assert_eq!(first["userId"], ada_id);
    assert_eq!(second["userId"], grace_id);
    assert_ne!(first["profileId"], second["profileId"]);
    let state = env
        .q(Some(&grace), "users/queries:getOnboardingState", json!({}))
        .await
        .unwrap();
    assert_eq!(state["onboardingComplete"], true);

    // The same user repeating the key gets the stored result, nothing is
    // written again (usage counts and audit entries stay as they were).
    env.clock.advance_ms(5_000);
    let mut changed = onboarding("djb2-5381");
    changed["company"] = json!("Another Company");
    let replay = env
        .m(Some(&ada), "users/mutations:saveOnboarding", changed)
        .await
        .unwrap();
    assert_eq!(replay, first);
    let profile = env
        .q(
            Some(&ada),
            "profiles/queries:getCurrentUserProfile",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(profile["company"], "Analytical Engines Ltd");
    assert_eq!(usage(&env.docs("interests").await, "ai-ml"), 2.0);
    let saves = env
        .docs("auditLogs")
        .await
        .iter()
        .filter(|a| a["action"] == "onboarding.save")
        .count();
    assert_eq!(saves, 2);
    // Without a key, the same form is recognised too.
    let mut no_key = onboarding("");
    no_key.as_object_mut().unwrap().remove("idempotencyKey");
    let a = env
        .m(Some(&ada), "users/mutations:saveOnboarding", no_key.clone())
        .await
        .unwrap();
    let b = env
        .m(Some(&ada), "users/mutations:saveOnboarding", no_key)
        .await
        .unwrap();
    assert_eq!(a, b);
    let saves = env
        .docs("auditLogs")
        .await
        .iter()
        .filter(|x| x["action"] == "onboarding.save")
        .count();
    assert_eq!(saves, 3);
}

// ---------------------------------------------------------------------------
// Profiles, settings, catalog

#[tokio::test]
async fn profile_functions_validate_and_return_stored_documents() {
    let env = Env::new().await;
    let ada = ada();
    // Signed out: null, not an error (the web app reads it during sign-in).
    assert_eq!(
        env.q(None, "profiles/queries:getCurrentUserProfile", json!({}))
            .await
            .unwrap(),
        Json::Null
    );
    env.sign_in(&ada).await;
    assert_eq!(
        env.q(
            Some(&ada),
            "settings/queries:getCurrentUserSettings",
            json!({})
        )
        .await
        .unwrap(),
        Json::Null
    );
    let id = env
        .m(
            Some(&ada),
            "profiles/mutations:createProfile",
            json!({"displayName": "Ada", "languages": ["English", "French"]}),
        )
        .await
        .unwrap();
    let again = env
        .m(
            Some(&ada),
            "profiles/mutations:updateProfile",
            json!({"company": "Analytical Engines Ltd", "goals": ""}),
        )
        .await
        .unwrap();
    assert_eq!(id, again);
    let profile = env
        .q(
            Some(&ada),
            "profiles/queries:getCurrentUserProfile",
            json!({}),
        )
        .await
        .unwrap();
    assert!(profile["_creationTime"].is_number());
    assert_eq!(profile["displayName"], "Ada");
    assert_eq!(profile["languages"], json!(["English", "French"]));
    for (args, field) in [
        (json!({"displayName": "   "}), "displayName"),
        (json!({"bio": "x".repeat(1001)}), "bio"),
        (json!({"age": 12.5}), "age"),
        (
            json!({"linkedinUrl": "http://www.linkedin.com/in/ada"}),
            "linkedinUrl",
        ),
        (json!({"languages": vec!["English"; 21]}), "languages"),
    ] {
        let e = env
            .m(Some(&ada), "profiles/mutations:updateProfile", args)
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::ValidationError);
        assert_eq!(e.metadata().unwrap()["field"], field);
    }
    let r = env
        .m(
            Some(&ada),
            "profiles/mutations:updateProfile",
            json!({"gender": "robot"}),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::ValidationError));
    env.m(
        Some(&ada),
        "settings/mutations:updateSettings",
        json!({"smsNotifications": true}),
    )
    .await
    .unwrap();
    let settings = env
        .q(
            Some(&ada),
            "settings/queries:getCurrentUserSettings",
            json!({}),
        )
        .await
        .unwrap();
    assert!(settings["_creationTime"].is_number());
    assert_eq!(settings["smsNotifications"], true);
    assert_eq!(settings["pushNotifications"], true);
}

#[tokio::test]
async fn catalog_is_seeded_once_and_needs_a_signed_in_caller() {
    let env = Env::new().await;
    // The start-up hook ran in Env::new; running it again changes nothing.
    model::on_start(&env.rt).await.unwrap();
    assert_eq!(env.docs("interests").await.len(), 6);
    let r = env
        .q(None, "interests/queries:listCatalog", json!({}))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::Unauthorized));
    let ada = ada();
    env.sign_in(&ada).await;
    let all = env
        .q(Some(&ada), "interests/queries:listCatalog", json!({}))
        .await
        .unwrap();
    let keys: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "design",
            "startups",
            "ai-ml",
            "product-management",
            "data-science",
            "software-engineering"
        ]
    );
    let industry = env
        .q(
            Some(&ada),
            "interests/queries:listCatalog",
            json!({"category": "industry", "limit": 2}),
        )
        .await
        .unwrap();
    assert_eq!(industry.as_array().unwrap().len(), 2);
    let r = env
        .q(
            Some(&ada),
            "interests/queries:listCatalog",
            json!({"limit": 0}),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::ValidationError));
}

#[tokio::test]
async fn internal_functions_are_not_callable_by_clients() {
    let env = Env::new().await;
    for path in [
        "users/queries:getUserByIdInternal",
        "users/queries:getUserByWorkosId",
        "users/queries:getUsersByOnboardingStatus",
        "users/mutations:createUser",
        "users/workos:applyWebhookEvent",
        "users/workos:storeUserRecord",
        "users/workos:pruneWebhookEvents",
        "profiles/queries:getProfileByUserId",
        "interests/queries:getUserInterests",
        "interests/queries:seedDefault",
        "migrations/createMissingProfiles:createMissingProfiles",
    ] {
        let e = env.rt.resolve_public(path, None).unwrap_err();
        assert_eq!(e.code(), ErrorCode::FunctionNotFound, "{path}");
        assert!(
            env.rt.registry().get(path).is_some(),
            "{path} is registered"
        );
    }
    // createMissingProfiles fills the gap for internally created users.
    env.internal(
        FunctionKind::Mutation,
        "users/mutations:createUser",
        json!({"workosUserId": "user_seed", "email": "seed@example.com"}),
    )
    .await;
    let out = env
        .internal(
            FunctionKind::Mutation,
            "migrations/createMissingProfiles:createMissingProfiles",
            json!({}),
        )
        .await;
    assert_eq!(out["profilesCreated"], 1.0);
    assert_eq!(env.docs("profiles").await[0]["displayName"], "seed");
}

// ---------------------------------------------------------------------------
// Data protection

#[tokio::test]
async fn export_my_data_and_delete_my_account() {
    let env = Env::new().await;
    let (ada, grace) = (ada(), grace());
    let ada_id = env.sign_in(&ada).await;
    env.sign_in(&grace).await;
    env.m(
        Some(&ada),
        "users/mutations:saveOnboarding",
        onboarding("k1"),
    )
    .await
    .unwrap();
    env.m(
        Some(&ada),
        "settings/mutations:updateSettings",
        json!({"dataSharing": true}),
    )
    .await
    .unwrap();
    // Grace also picks "Poetry" (shared custom interest) and Ada creates a
    // second custom interest only she uses.
    let mut g = onboarding("k2");
    g["interests"] = json!([{"id": "poetry", "name": "Poetry", "category": "personal"}]);
    env.m(Some(&grace), "users/mutations:saveOnboarding", g)
        .await
        .unwrap();
    env.m(Some(&ada), "users/mutations:saveOnboarding", {
        let mut a = onboarding("k3");
        a["interests"] = json!([
            {"id": "ai-ml", "name": "AI / ML", "category": "academic"},
            {"id": "poetry", "name": "Poetry", "category": "personal"},
            {"id": "chess", "name": "Chess Problems", "category": "personal"}
        ]);
        a
    })
    .await
    .unwrap();
    // Someone else can't export Ada's data: the export is always the caller's.
    let export = env
        .q(Some(&ada), "users/queries:exportMyData", json!({}))
        .await
        .unwrap();
    assert_eq!(export["userId"], ada_id);
    let s = &export["sections"];
    assert_eq!(s["users"][0]["email"], "ada@example.com");
    assert_eq!(s["profiles"].as_array().unwrap().len(), 1);
    assert_eq!(s["userSettings"][0]["dataSharing"], true);
    assert_eq!(s["userInterests"].as_array().unwrap().len(), 3);
    assert_eq!(s["customInterests"].as_array().unwrap().len(), 2);
    let r = env.q(None, "users/queries:exportMyData", json!({})).await;
    assert_eq!(code(&r), Some(ErrorCode::Unauthorized));

    let r = env
        .m(
            Some(&ada),
            "users/mutations:deleteMyAccount",
            json!({"confirm": false}),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::ValidationError));
    let report = env
        .m(
            Some(&ada),
            "users/mutations:deleteMyAccount",
            json!({"confirm": true}),
        )
        .await
        .unwrap();
    assert_eq!(report["userId"], ada_id);
    assert_eq!(report["sections"]["users"]["anonymised"], 1.0);
    assert_eq!(report["sections"]["profiles"]["deleted"], 1.0);
    assert_eq!(report["sections"]["userSettings"]["deleted"], 1.0);
    assert_eq!(report["sections"]["userInterests"]["deleted"], 3.0);
    assert_eq!(report["sections"]["customInterests"]["deleted"], 1.0);
    assert_eq!(report["sections"]["customInterests"]["anonymised"], 1.0);

    // The user row is anonymised in place.
    let users = env.docs("users").await;
    let row = users.iter().find(|u| u["_id"] == ada_id).unwrap();
    assert_eq!(row["email"], "");
    assert_eq!(row["displayName"], "Deleted user");
    assert_eq!(row["isActive"], false);
    assert_eq!(row["workosUserId"], format!("deleted:{ada_id}"));
    for gone in [
        "orgId",
        "orgRole",
        "lastSeenAt",
        "onboardingComplete",
        "avatarUrl",
    ] {
        assert!(row.get(gone).is_none(), "{gone} in {row}");
    }
    // Her rows elsewhere are gone; Grace's remain.
    let mine = |docs: Vec<Json>| docs.iter().filter(|d| d["userId"] == ada_id).count();
    assert_eq!(mine(env.docs("profiles").await), 0);
    assert_eq!(mine(env.docs("userSettings").await), 0);
    assert_eq!(mine(env.docs("userInterests").await), 0);
    assert_eq!(env.docs("profiles").await.len(), 1);
    let catalog = env.docs("interests").await;
    let poetry = catalog
        .iter()
        .find(|d| d["key"] == "custom:poetry")
        .unwrap();
    assert!(poetry.get("createdBy").is_none(), "{poetry}");
    assert_eq!(poetry["usageCount"], 1.0);
    assert!(catalog.iter().all(|d| d["key"] != "custom:chess-problems"));
    assert_eq!(usage(&catalog, "ai-ml"), 0.0);
    // Audited.
    assert!(
        env.docs("auditLogs")
            .await
            .iter()
            .any(|a| a["action"] == "account.deleted" && a["actorUserId"] == ada_id)
    );
    // Grace still sees the deleted user's id resolve to the anonymous view.
    let seen = env
        .q(
            Some(&grace),
            "users/queries:getUserById",
            json!({"userId": ada_id}),
        )
        .await
        .unwrap();
    assert_eq!(
        seen,
        json!({"_id": ada_id, "displayName": "Deleted user", "isActive": false})
    );
    // Signing in again starts a new, empty account.
    assert_eq!(
        env.q(Some(&ada), "users/queries:getCurrentUser", json!({}))
            .await
            .unwrap(),
        Json::Null
    );
    let new_id = env.sign_in(&ada).await;
    assert_ne!(new_id, ada_id);
    let state = env
        .q(Some(&ada), "users/queries:getOnboardingState", json!({}))
        .await
        .unwrap();
    assert_eq!(state["onboardingComplete"], false);
    // Admin functions can't reach the deleted row.
    let r = env
        .m(
            Some(&ada),
            "users/mutations:deactivateUser",
            json!({"userId": ada_id}),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::NotFound));
}

#[tokio::test]
async fn data_sections_cover_every_people_table() {
    let names: Vec<&str> = model::data_sections().iter().map(|s| s.name).collect();
    for table in [
        "users",
        "profiles",
        "userSettings",
        "userInterests",
        "customInterests",
        "workos",
    ] {
        assert!(names.contains(&table), "{table} missing from {names:?}");
    }
    assert!(
        model::data_sections()
            .iter()
            .all(|s| !s.on_delete.is_empty())
    );
}

#[tokio::test]
async fn defect_return_validators_reject_real_documents() {
    // The original's `returns` validators omitted `_creationTime`, so these
    // reads failed whenever the document existed (and saveOnboarding failed
    // re-reading its idempotency key). Here every read returns the stored
    // document through a validator that checks it.
    let env = Env::new().await;
    let ada = ada();
    let ada_id = env.sign_in(&ada).await;
    env.m(
        Some(&ada),
        "settings/mutations:updateSettings",
        json!({"dataSharing": true}),
    )
    .await
    .unwrap();
    let first = env
        .m(
            Some(&ada),
            "users/mutations:saveOnboarding",
            onboarding("k"),
        )
        .await
        .unwrap();
    let again = env
        .m(
            Some(&ada),
            "users/mutations:saveOnboarding",
            onboarding("k"),
        )
        .await
        .unwrap();
    assert_eq!(first, again);
    for (path, args) in [
        ("profiles/queries:getCurrentUserProfile", json!({})),
        ("settings/queries:getCurrentUserSettings", json!({})),
        ("users/queries:getCurrentUser", json!({})),
        ("users/queries:getUserById", json!({"userId": ada_id})),
    ] {
        let doc = env.q(Some(&ada), path, args).await.unwrap();
        assert!(doc["_creationTime"].is_number(), "{path}: {doc}");
    }
    let internal = env
        .internal(
            FunctionKind::Query,
            "profiles/queries:getProfileByUserId",
            json!({"userId": ada_id}),
        )
        .await;
    assert!(internal["_creationTime"].is_number());
}

#[tokio::test]
async fn defect_inconsistent_failure_modes_when_signed_out() {
    // The original's getCurrentUserSettings threw UNAUTHORIZED while
    // getCurrentUser and getCurrentUserProfile returned null. All three
    // current-user reads now return null for a signed-out or not yet
    // provisioned caller, and all refuse a deactivated one.
    let env = Env::new().await;
    let newcomer = grace();
    for path in [
        "users/queries:getCurrentUser",
        "profiles/queries:getCurrentUserProfile",
        "settings/queries:getCurrentUserSettings",
    ] {
        assert_eq!(
            env.q(None, path, json!({})).await.unwrap(),
            Json::Null,
            "{path}"
        );
        assert_eq!(
            env.q(Some(&newcomer), path, json!({})).await.unwrap(),
            Json::Null,
            "{path}"
        );
    }
}

// ---------------------------------------------------------------------------
// Authorization matrix
//
// The issue-4 matrix (every public function × the seven meeting-relative
// callers) is authz_matrix.rs. This one keeps the people functions' callers
// that it does not have: a token whose user is not provisioned yet and a
// deactivated user.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    /// A valid token whose user row does not exist yet.
    Unprovisioned,
    /// A deactivated member of the target's organization.
    Deactivated,
    /// An admin of another organization.
    OtherOrgAdmin,
    /// A member of the target's organization.
    SameOrgMember,
    /// An admin of the target's organization.
    SameOrgAdmin,
    /// The target user themself.
    Target,
}

const WHO: [Who; 7] = [
    Who::Anonymous,
    Who::Unprovisioned,
    Who::Deactivated,
    Who::OtherOrgAdmin,
    Who::SameOrgMember,
    Who::SameOrgAdmin,
    Who::Target,
];

const OK: Option<ErrorCode> = None;
const UNAUTH: Option<ErrorCode> = Some(ErrorCode::Unauthorized);
const FORBID: Option<ErrorCode> = Some(ErrorCode::Forbidden);
/// Signed-in, active callers only; reads and writes of the caller's own data.
const SIGNED_IN: [Option<ErrorCode>; 7] = [UNAUTH, UNAUTH, FORBID, OK, OK, OK, OK];
/// Current-user reads: `null` when signed out or not provisioned.
const CURRENT: [Option<ErrorCode>; 7] = [OK, OK, FORBID, OK, OK, OK, OK];
/// Acting on another user: the user or an admin of the user's organization.
const OWNER_OR_ADMIN: [Option<ErrorCode>; 7] = [UNAUTH, UNAUTH, FORBID, FORBID, FORBID, OK, OK];

#[tokio::test]
async fn authorization_matrix_of_people_functions() {
    use FunctionKind::{Mutation, Query};
    type Args = fn(&str) -> Json;
    let rows: Vec<(&str, FunctionKind, Args, [Option<ErrorCode>; 7])> = vec![
        (
            "users/queries:getCurrentUser",
            Query,
            |_| json!({}),
            CURRENT,
        ),
        (
            "users/queries:getUserById",
            Query,
            |t| json!({"userId": t}),
            SIGNED_IN,
        ),
        (
            "users/queries:getUserProfile",
            Query,
            |t| json!({"userId": t}),
            SIGNED_IN,
        ),
        (
            "users/queries:getOnboardingState",
            Query,
            |_| json!({}),
            SIGNED_IN,
        ),
        (
            "users/queries:listActiveUsersInOrg",
            Query,
            |_| json!({"paginationOpts": {"numItems": 10, "cursor": null}}),
            SIGNED_IN,
        ),
        (
            "users/queries:exportMyData",
            Query,
            |_| json!({}),
            SIGNED_IN,
        ),
        (
            "users/mutations:upsertUser",
            Mutation,
            |_| json!({}),
            [UNAUTH, OK, FORBID, OK, OK, OK, OK],
        ),
        (
            "users/mutations:updateUserProfile",
            Mutation,
            |t| json!({"userId": t, "bio": "Updated through the matrix."}),
            OWNER_OR_ADMIN,
        ),
        (
            "users/mutations:updateUserInterests",
            Mutation,
            |t| json!({"userId": t, "interests": ["ai-ml"]}),
            OWNER_OR_ADMIN,
        ),
        (
            "users/mutations:deactivateUser",
            Mutation,
            |t| json!({"userId": t}),
            OWNER_OR_ADMIN,
        ),
        (
            "users/mutations:updateLastSeen",
            Mutation,
            |_| json!({}),
            SIGNED_IN,
        ),
        (
            "users/mutations:saveOnboarding",
            Mutation,
            |_| onboarding("matrix"),
            SIGNED_IN,
        ),
        (
            "users/mutations:deleteMyAccount",
            Mutation,
            |_| json!({"confirm": true}),
            SIGNED_IN,
        ),
        (
            "profiles/queries:getCurrentUserProfile",
            Query,
            |_| json!({}),
            CURRENT,
        ),
        (
            "profiles/queries:getProfileByUserIdPublic",
            Query,
            |t| json!({"userId": t}),
            SIGNED_IN,
        ),
        (
            "profiles/mutations:updateProfile",
            Mutation,
            |_| json!({"company": "Matrix Inc"}),
            SIGNED_IN,
        ),
        (
            "profiles/mutations:createProfile",
            Mutation,
            |_| json!({"displayName": "Matrix"}),
            SIGNED_IN,
        ),
        (
            "interests/queries:listCatalog",
            Query,
            |_| json!({}),
            SIGNED_IN,
        ),
        (
            "settings/queries:getCurrentUserSettings",
            Query,
            |_| json!({}),
            CURRENT,
        ),
        (
            "settings/mutations:updateSettings",
            Mutation,
            |_| json!({"emailNotifications": false}),
            SIGNED_IN,
        ),
    ];

    // Every public function of these domains has a row.
    let env = Env::new().await;
    let public: std::collections::BTreeSet<String> = env
        .rt
        .registry()
        .functions()
        .filter(|f| f.visibility == runtime::Visibility::Public)
        .map(|f| f.path.clone())
        .filter(|p| {
            ["users/", "profiles/", "interests/", "settings/"]
                .iter()
                .any(|d| p.starts_with(d))
        })
        .collect();
    let covered: std::collections::BTreeSet<String> = rows.iter().map(|r| r.0.to_owned()).collect();
    assert_eq!(
        covered, public,
        "rows must cover exactly the public functions"
    );
    drop(env);

    let mut failures = Vec::new();
    for (path, kind, args, expected) in &rows {
        for (who, want) in WHO.iter().zip(expected) {
            let env = Env::new().await;
            let target = grace();
            let target_id = env.sign_in(&target).await;
            let admin = ada();
            env.sign_in(&admin).await;
            let member = full(
                "user_linus",
                "linus@example.com",
                "Linus",
                Some(ORG_A),
                Some("member"),
            );
            env.sign_in(&member).await;
            let other = mallory();
            env.sign_in(&other).await;
            let dee = full(
                "user_dee",
                "dee@example.com",
                "Dee",
                Some(ORG_A),
                Some("member"),
            );
            let dee_id = env.sign_in(&dee).await;
            env.m(
                Some(&admin),
                "users/mutations:deactivateUser",
                json!({"userId": dee_id}),
            )
            .await
            .unwrap();
            let newcomer = full(
                "user_new",
                "new@example.com",
                "Newcomer",
                Some(ORG_A),
                Some("member"),
            );
            let caller = match who {
                Who::Anonymous => None,
                Who::Unprovisioned => Some(&newcomer),
                Who::Deactivated => Some(&dee),
                Who::OtherOrgAdmin => Some(&other),
                Who::SameOrgMember => Some(&member),
                Who::SameOrgAdmin => Some(&admin),
                Who::Target => Some(&target),
            };
            let got = code(&env.call(caller, *kind, path, args(&target_id)).await);
            if got != *want {
                failures.push(format!("{path} as {who:?}: expected {want:?}, got {got:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
