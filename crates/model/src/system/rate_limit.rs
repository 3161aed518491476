//! A durable fixed-window rate limiter per user and action (`rateLimits`).
//!
//! Time is cut into windows of `window_ms` starting at multiples of
//! `window_ms` since the epoch (`windowStart = floor(now / window) *
//! window`); one document per (user, action, window) counts the admitted
//! calls. [`check_and_consume`] reads that document through the caller's
//! transaction and increments it, so:
//!
//! * the slot is consumed only if the caller's mutation commits (a mutation
//!   that fails afterwards gives its slot back);
//! * concurrent calls for the same user and action conflict on the same
//!   index key and are serialized by optimistic concurrency control (the
//!   losers re-run against the new count), so at most `max` calls are ever
//!   admitted per window; different users or actions never conflict.
//!
//! A call over the limit fails with `RATE_LIMIT_EXCEEDED` (HTTP 429) whose
//! metadata is `{action, limit, windowMs, retryAfterSeconds, resetTime}`
//! and writes nothing. An hourly cron deletes windows that started more
//! than a day ago (so windows may be at most a day long).

use std::time::Duration;

use errors::{Error, ErrorCode, Result};
use runtime::{CronSchedule, DbWriter, MutationCtx, Registry};
use serde::Deserialize;
use values::{Value, v};

use super::CLEANUP_BATCH;
use crate::ids::{Id, Users};

/// The longest supported window (and how long a window is kept after it
/// started): one day.
pub const MAX_WINDOW_MS: f64 = 86_400_000.0;

/// The path of the internal clean-up mutation run by the hourly cron.
pub const CLEANUP_PATH: &str = "system/rateLimit:cleanupExpiredWindows";

/// A limit: at most `max` calls per fixed window of `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Calls admitted per window.
    pub max: u32,
    /// The window length in milliseconds (at most [`MAX_WINDOW_MS`]).
    pub window_ms: f64,
}

impl RateLimit {
    /// `max` calls per minute.
    pub const fn per_minute(max: u32) -> Self {
        Self {
            max,
            window_ms: 60_000.0,
        }
    }

    /// `max` calls per hour.
    pub const fn per_hour(max: u32) -> Self {
        Self {
            max,
            window_ms: 3_600_000.0,
        }
    }
}

/// The state of a window after an admitted call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitStatus {
    /// Calls still admitted in this window.
    pub remaining: u32,
    /// When the window ends (ms since the epoch).
    pub reset_at_ms: f64,
}

/// The start of the window containing `now_ms`.
pub fn window_start(now_ms: f64, window_ms: f64) -> f64 {
    (now_ms / window_ms).floor() * window_ms
}

fn check_limit(limit: RateLimit) -> Result<()> {
    if !(limit.window_ms.is_finite() && limit.window_ms >= 1.0 && limit.window_ms <= MAX_WINDOW_MS)
    {
        return Err(Error::internal(format!(
            "rate limit window must be between 1 ms and one day, got {} ms",
            limit.window_ms
        )));
    }
    Ok(())
}

/// Admits one call of `action` by `user` at `now_ms` under `limit`, or fails
/// with `RATE_LIMIT_EXCEEDED` (see the module docs). Returns what is left of
/// the window.
pub async fn consume(
    db: &DbWriter,
    user: Id<Users>,
    action: &str,
    limit: RateLimit,
    now_ms: f64,
) -> Result<RateLimitStatus> {
    check_limit(limit)?;
    let start = window_start(now_ms, limit.window_ms);
    let reset = start + limit.window_ms;
    let doc = db
        .query("rateLimits")
        .with_index("by_user_action_window", |r| {
            r.eq("userId", user.to_value())
                .eq("action", action)
                .eq("windowStartMs", start)
        })
        .first()
        .await?;
    let count = doc
        .as_ref()
        .and_then(|d| d.field("count").and_then(Value::as_f64))
        .unwrap_or(0.0);
    if count >= f64::from(limit.max) {
        let retry_after = ((reset - now_ms) / 1000.0).ceil().max(1.0);
        return Err(Error::app(
            ErrorCode::RateLimitExceeded,
            format!("Rate limit exceeded for {action}. Try again in {retry_after} seconds."),
        )
        .with_metadata(serde_json::json!({
            "action": action,
            "limit": limit.max,
            "windowMs": limit.window_ms,
            "retryAfterSeconds": retry_after,
            "resetTime": reset,
        })));
    }
    let next = count + 1.0;
    match doc {
        Some(doc) => {
            db.patch(
                doc.id(),
                Value::object([
                    ("count".to_owned(), Value::Float64(next)),
                    ("updatedAt".to_owned(), Value::Float64(now_ms)),
                ]),
            )
            .await?;
        }
        None => {
            db.insert(
                "rateLimits",
                Value::object([
                    ("userId".to_owned(), user.to_value()),
                    ("action".to_owned(), Value::from(action)),
                    ("windowStartMs".to_owned(), Value::Float64(start)),
                    ("count".to_owned(), Value::Float64(next)),
                    ("createdAt".to_owned(), Value::Float64(now_ms)),
                    ("updatedAt".to_owned(), Value::Float64(now_ms)),
                ]),
            )
            .await?;
        }
    }
    Ok(RateLimitStatus {
        remaining: limit.max.saturating_sub(next as u32),
        reset_at_ms: reset,
    })
}

/// Admits one call of `action` by `user` at `now_ms` (pass `ctx.now_ms()`)
/// under `limit`, consuming a slot of the current window in the caller's
/// transaction; over the limit it fails with `RATE_LIMIT_EXCEEDED` and
/// metadata `{action, limit, windowMs, retryAfterSeconds, resetTime}`.
pub async fn check_and_consume(
    db: &DbWriter,
    user: Id<Users>,
    action: &str,
    limit: RateLimit,
    now_ms: f64,
) -> Result<()> {
    consume(db, user, action, limit, now_ms).await.map(|_| ())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnforceArgs {
    user_id: Id<Users>,
    action: String,
    window_ms: f64,
    max_count: f64,
}

/// @summary Consumes one rate-limit slot for a user and action
///
/// @description Internal (the original's `system/rateLimit:enforce`, for
/// actions, which have no `ctx.db`): admits one call of `action` by `userId`
/// under `maxCount` calls per `windowMs`, or fails with
/// `RATE_LIMIT_EXCEEDED`. Returns `{remaining, resetAt}`. Mutations should
/// call `model::system::rate_limit::check_and_consume` directly.
#[macros::function(
    internal_mutation,
    path = "system/rateLimit:enforce",
    args = v::object([
        ("userId", v::id("users")),
        ("action", v::string()),
        ("windowMs", v::number()),
        ("maxCount", v::number()),
    ]),
    returns = v::object([("remaining", v::number()), ("resetAt", v::number())])
)]
async fn enforce(ctx: MutationCtx, args: EnforceArgs) -> Result<serde_json::Value> {
    let limit = RateLimit {
        max: args.max_count.clamp(0.0, f64::from(u32::MAX)) as u32,
        window_ms: args.window_ms,
    };
    let status = consume(&ctx.db, args.user_id, &args.action, limit, ctx.now_ms()).await?;
    Ok(serde_json::json!({"remaining": status.remaining, "resetAt": status.reset_at_ms}))
}

/// @summary Deletes rate-limit windows that started more than a day ago
///
/// @description Internal, run hourly by a cron: deletes up to a batch of
/// `rateLimits` documents whose window started more than one day before now
/// and, when the batch was full, schedules itself again. Returns how many
/// documents it deleted.
#[macros::function(
    internal_mutation,
    path = "system/rateLimit:cleanupExpiredWindows",
    returns = v::number()
)]
async fn cleanup_expired_windows(ctx: MutationCtx, _args: Value) -> Result<f64> {
    let cutoff = ctx.now_ms() - MAX_WINDOW_MS;
    let docs = ctx
        .db
        .query("rateLimits")
        .with_index("by_window_start", |r| r.lt("windowStartMs", cutoff))
        .take(CLEANUP_BATCH)
        .await?;
    for doc in &docs {
        ctx.db.delete(doc.id()).await?;
    }
    if docs.len() == CLEANUP_BATCH {
        ctx.scheduler
            .run_after(Duration::ZERO, CLEANUP_PATH, serde_json::json!({}))
            .await?;
    }
    Ok(docs.len() as f64)
}

/// Registers `system/rateLimit:*` and the hourly clean-up cron.
pub fn register(registry: &mut Registry) {
    registry.register(enforce_spec());
    registry.register(cleanup_expired_windows_spec());
    registry.cron(
        "system: delete expired rate-limit windows",
        CronSchedule::Interval(Duration::from_secs(3600)),
        CLEANUP_PATH,
        Value::object(Vec::<(String, Value)>::new()),
    );
}
