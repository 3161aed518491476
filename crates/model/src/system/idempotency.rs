//! Idempotency keys with a stored, replayable result (`idempotencyKeys`).
//!
//! A key is identified by (`scope`, `key`, `user`): the same client key sent
//! by two users names two different operations (the original's keys were
//! global, so two users submitting the same onboarding form got each
//! other's result). Typical use inside a mutation:
//!
//! ```ignore
//! if let Some(done) = idempotency::lookup(&ctx.db, SCOPE, &key, Some(user.id), now).await? {
//!     return Ok(values::from_value(done)?);
//! }
//! let result = do_the_work(&ctx).await?;
//! idempotency::store(&ctx.db, SCOPE, &key, Some(user.id), values::to_value(&result)?, TTL_MS, now).await?;
//! ```
//!
//! Because the lookup and the store run in the caller's transaction, two
//! concurrent first calls conflict and the second re-runs after the first
//! committed, so it replays instead of doing the work twice. The result is
//! stored inline in the document (at most the 1 MiB document limit); it is
//! replayed until `expiresAt`, after which the operation runs again. An
//! hourly cron deletes expired keys.

use std::time::Duration;

use database::Document;
use errors::{Error, Result};
use runtime::{CronSchedule, DbReader, DbWriter, MutationCtx, QueryCtx, Registry};
use serde::Deserialize;
use values::{Value, v};

use super::CLEANUP_BATCH;
use crate::ids::{Id, Users};

/// The path of the internal purge mutation run by the hourly cron.
pub const PURGE_PATH: &str = "system/idempotency:purgeExpiredKeys";

fn check_key(scope: &str, key: &str) -> Result<()> {
    if scope.is_empty() {
        return Err(Error::validation("idempotency scope must not be empty"));
    }
    if key.is_empty() || key.len() > 1024 {
        return Err(Error::validation(
            "idempotency key must be 1 to 1024 bytes long",
        ));
    }
    Ok(())
}

/// The documents of (`scope`, `key`, `user`), read through the transaction.
async fn find(
    db: &DbReader,
    scope: &str,
    key: &str,
    user: Option<Id<Users>>,
) -> Result<Vec<Document>> {
    let want = user.map(Id::to_value);
    db.query("idempotencyKeys")
        .with_index("by_key_scope", |r| r.eq("key", key).eq("scope", scope))
        .filter(move |d| match (d.field("userId"), &want) {
            (None, None) => true,
            (Some(a), Some(b)) => a.as_str() == b.as_str(),
            _ => false,
        })
        .collect()
        .await
}

fn expires_at(doc: &Document) -> f64 {
    doc.field("expiresAt")
        .and_then(Value::as_f64)
        .unwrap_or(f64::NEG_INFINITY)
}

/// The result stored for (`scope`, `key`, `user`) if it has not expired at
/// `now_ms` (`expiresAt > now_ms`), else `None`. `user: None` is a key not
/// tied to a user (webhook deliveries, system jobs); it never matches a
/// user's key.
pub async fn lookup(
    db: &DbReader,
    scope: &str,
    key: &str,
    user: Option<Id<Users>>,
    now_ms: f64,
) -> Result<Option<Value>> {
    check_key(scope, key)?;
    let docs = find(db, scope, key, user).await?;
    Ok(docs
        .into_iter()
        .filter(|d| expires_at(d) > now_ms)
        .max_by(|a, b| expires_at(a).total_cmp(&expires_at(b)))
        .map(|d| d.field("result").cloned().unwrap_or(Value::Null)))
}

/// Stores `result` for (`scope`, `key`, `user`) until `now_ms + ttl_ms`,
/// replacing any earlier result of the same key (so a key never has two
/// documents). `ttl_ms` must be positive (`VALIDATION_ERROR`).
pub async fn store(
    db: &DbWriter,
    scope: &str,
    key: &str,
    user: Option<Id<Users>>,
    result: Value,
    ttl_ms: f64,
    now_ms: f64,
) -> Result<()> {
    check_key(scope, key)?;
    if !(ttl_ms.is_finite() && ttl_ms > 0.0) {
        return Err(Error::validation("idempotency ttl must be positive"));
    }
    let mut fields = vec![
        ("key".to_owned(), Value::from(key)),
        ("scope".to_owned(), Value::from(scope)),
        ("result".to_owned(), result),
        ("expiresAt".to_owned(), Value::Float64(now_ms + ttl_ms)),
        ("createdAt".to_owned(), Value::Float64(now_ms)),
    ];
    if let Some(user) = user {
        fields.push(("userId".to_owned(), user.to_value()));
    }
    let doc = Value::object(fields);
    let mut existing = find(db, scope, key, user).await?.into_iter();
    match existing.next() {
        Some(first) => {
            db.replace(first.id(), doc).await?;
            for extra in existing {
                db.delete(extra.id()).await?;
            }
        }
        None => {
            db.insert("idempotencyKeys", doc).await?;
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetArgs {
    scope: String,
    key: String,
    user_id: Option<Id<Users>>,
}

/// @summary Gets the stored result of an idempotency key
///
/// @description Internal, for actions (which have no `ctx.db`): returns
/// `{result}` when (`scope`, `key`, `userId`) has an unexpired stored result,
/// else null. Mutations call `model::system::idempotency::lookup` directly.
#[macros::function(
    internal_query,
    path = "system/idempotency:getResult",
    args = v::object([
        ("scope", v::string()),
        ("key", v::string()),
        ("userId", v::optional(v::id("users"))),
    ]),
    returns = v::union([v::null(), v::object([("result", v::any())])])
)]
async fn get_result(ctx: QueryCtx, args: GetArgs) -> Result<Value> {
    let found = lookup(&ctx.db, &args.scope, &args.key, args.user_id, ctx.now_ms()).await?;
    Ok(match found {
        Some(result) => Value::object([("result", result)]),
        None => Value::Null,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoreArgs {
    scope: String,
    key: String,
    user_id: Option<Id<Users>>,
    result: Value,
    ttl_ms: f64,
}

/// @summary Stores the result of an idempotency key
///
/// @description Internal, for actions: stores `result` for (`scope`, `key`,
/// `userId`) for `ttlMs`, replacing an earlier result. Mutations call
/// `model::system::idempotency::store` directly.
#[macros::function(
    internal_mutation,
    path = "system/idempotency:storeResult",
    args = v::object([
        ("scope", v::string()),
        ("key", v::string()),
        ("userId", v::optional(v::id("users"))),
        ("result", v::any()),
        ("ttlMs", v::number()),
    ]),
    returns = v::null()
)]
async fn store_result(ctx: MutationCtx, args: StoreArgs) -> Result<()> {
    store(
        &ctx.db,
        &args.scope,
        &args.key,
        args.user_id,
        args.result,
        args.ttl_ms,
        ctx.now_ms(),
    )
    .await
}

/// @summary Purges expired idempotency keys
///
/// @description Internal, run hourly by a cron: deletes up to a batch of
/// `idempotencyKeys` whose `expiresAt` has passed and, when the batch was
/// full, schedules itself again. Returns how many keys it deleted.
#[macros::function(
    internal_mutation,
    path = "system/idempotency:purgeExpiredKeys",
    returns = v::number()
)]
async fn purge_expired_keys(ctx: MutationCtx, _args: Value) -> Result<f64> {
    let now = ctx.now_ms();
    let docs = ctx
        .db
        .query("idempotencyKeys")
        .with_index("by_expires", |r| r.lte("expiresAt", now))
        .take(CLEANUP_BATCH)
        .await?;
    for doc in &docs {
        ctx.db.delete(doc.id()).await?;
    }
    if docs.len() == CLEANUP_BATCH {
        ctx.scheduler
            .run_after(Duration::ZERO, PURGE_PATH, serde_json::json!({}))
            .await?;
    }
    Ok(docs.len() as f64)
}

/// Registers `system/idempotency:*` and the hourly purge cron.
pub fn register(registry: &mut Registry) {
    registry.register(get_result_spec());
    registry.register(store_result_spec());
    registry.register(purge_expired_keys_spec());
    registry.cron(
        "system: purge expired idempotency keys",
        CronSchedule::Interval(Duration::from_secs(3600)),
        PURGE_PATH,
        Value::object(Vec::<(String, Value)>::new()),
    );
}
