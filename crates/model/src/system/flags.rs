//! Feature flags per environment with a rollout percentage (`featureFlags`).
//!
//! A flag is a (`key`, `environment`) pair holding a primitive `value` and a
//! `rolloutPercentage` in 0..=100. [`evaluate`] answers what a *subject*
//! (normally the user id) sees:
//!
//! * no flag for (`key`, `environment`) → `None` (use the built-in default);
//! * the subject is in the rollout → `Some(value)`;
//! * the subject is outside the rollout → `None`, as if the flag were unset.
//!
//! **Rollout rule** (stable, documented, independent of process and
//! platform): `bucket = splitmix64(fnv1a64(key ‖ 0xFF ‖ subject)) mod 100`,
//! where `fnv1a64` is 64-bit FNV-1a over the UTF-8 bytes (0xFF never occurs
//! in UTF-8, so the separator is unambiguous) and `splitmix64` is the
//! SplitMix64 finalizer (which spreads FNV's low bits); the subject is in
//! the rollout iff `bucket < rolloutPercentage`. 0 admits nobody, 100
//! everybody, and raising the percentage only ever adds subjects. Hashing
//! the key with the subject gives each flag an independent sample.
//!
//! The flag is read through the caller's transaction, so a live query that
//! evaluated a flag re-runs when the flag changes.
//!
//! Flags are deployment-wide (they have no organization), so the public
//! `admin/featureFlags:setFlag` is restricted to admins of the *operator*
//! organizations: those listed (comma-separated org ids) in the string flag
//! [`FLAG_ADMIN_ORGS_KEY`] of the same environment, which only the internal
//! `system/featureFlags:setFlag` (the operator's tool) can change.

use database::Document;
use errors::{Error, Result};
use runtime::{DbReader, DbWriter, MutationCtx, QueryCtx, Registry};
use serde::Deserialize;
use values::{DocumentId, Validator, Value, v};

use super::audit::{self, AuditEntry};
use super::primitive_validator;
use crate::auth::{CurrentUser, OrgRole, require_user};
use crate::ids::{Id, Users};

/// The environment used when none is given.
pub const DEFAULT_ENVIRONMENT: &str = "production";

/// The string flag listing (comma-separated) the organizations whose admins
/// may change the flags of its environment with `admin/featureFlags:setFlag`.
pub const FLAG_ADMIN_ORGS_KEY: &str = "system.flagAdminOrgs";

/// Longest flag key and environment name, in bytes.
const MAX_NAME_BYTES: usize = 128;

/// A flag's value.
#[derive(Debug, Clone, PartialEq)]
pub enum FlagValue {
    /// A boolean flag.
    Bool(bool),
    /// A numeric flag.
    Number(f64),
    /// A string flag.
    String(String),
}

impl FlagValue {
    /// Reads a stored value (`string | number | boolean`).
    pub fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Boolean(b) => Some(Self::Bool(*b)),
            Value::Float64(n) => Some(Self::Number(*n)),
            Value::String(s) => Some(Self::String(s.clone())),
            _ => None,
        }
    }

    /// The value as stored and returned to clients.
    pub fn to_value(&self) -> Value {
        match self {
            Self::Bool(b) => Value::Boolean(*b),
            Self::Number(n) => Value::Float64(*n),
            Self::String(s) => Value::String(s.clone()),
        }
    }

    /// The boolean, if this is a boolean flag.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Whether this is `Bool(true)`.
    pub fn is_enabled(&self) -> bool {
        self.as_bool() == Some(true)
    }
}

impl From<FlagValue> for Value {
    fn from(value: FlagValue) -> Value {
        value.to_value()
    }
}

fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The rollout bucket (0..100) of `subject` for flag `key` (see the module
/// docs for the exact rule).
pub fn rollout_bucket(key: &str, subject: &str) -> u32 {
    let hash = splitmix64(fnv1a64(&[key.as_bytes(), &[0xFF], subject.as_bytes()]));
    (hash % 100) as u32
}

/// Whether `subject` is inside a rollout of `percentage` for flag `key`.
pub fn in_rollout(key: &str, subject: &str, percentage: f64) -> bool {
    f64::from(rollout_bucket(key, subject)) < percentage
}

async fn find(db: &DbReader, key: &str, environment: &str) -> Result<Option<Document>> {
    db.query("featureFlags")
        .with_index("by_key_env", |r| {
            r.eq("key", key).eq("environment", environment)
        })
        .first()
        .await
}

fn evaluate_doc(doc: &Document, key: &str, subject: &str) -> Option<FlagValue> {
    let percentage = doc
        .field("rolloutPercentage")
        .and_then(Value::as_f64)
        .unwrap_or(100.0);
    if !in_rollout(key, subject, percentage) {
        return None;
    }
    doc.field("value").and_then(FlagValue::from_value)
}

/// What `subject` sees of flag `key` in `environment`: `None` when the flag
/// is not set there or the subject is outside its rollout (see the module
/// docs). Reads through the transaction, so live queries are reactive.
pub async fn evaluate(
    db: &DbReader,
    key: &str,
    environment: &str,
    subject: &str,
) -> Result<Option<FlagValue>> {
    Ok(find(db, key, environment)
        .await?
        .and_then(|doc| evaluate_doc(&doc, key, subject)))
}

/// Whether boolean flag `key` is on for `subject` (`false` when unset, off,
/// not boolean or outside the rollout).
pub async fn is_enabled(
    db: &DbReader,
    key: &str,
    environment: &str,
    subject: &str,
) -> Result<bool> {
    Ok(evaluate(db, key, environment, subject)
        .await?
        .is_some_and(|v| v.is_enabled()))
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(Error::validation(format!(
            "{what} must be 1 to {MAX_NAME_BYTES} bytes long"
        )));
    }
    Ok(())
}

/// A flag to set (see [`set`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FlagUpdate {
    /// The flag key.
    pub key: String,
    /// The environment.
    pub environment: String,
    /// The value.
    pub value: FlagValue,
    /// 0..=100.
    pub rollout_percentage: f64,
    /// Who changed it.
    pub updated_by: Option<Id<Users>>,
}

/// Creates or replaces flag (`key`, `environment`) in the caller's
/// transaction. Returns the flag's document id and its previous value.
/// A rollout outside 0..=100, an empty or over-long key or environment, or a
/// non-finite number is a `VALIDATION_ERROR`.
pub async fn set(
    db: &DbWriter,
    update: FlagUpdate,
    now_ms: f64,
) -> Result<(DocumentId, Option<FlagValue>)> {
    check_name("key", &update.key)?;
    check_name("environment", &update.environment)?;
    let p = update.rollout_percentage;
    if !(p.is_finite() && (0.0..=100.0).contains(&p)) {
        return Err(Error::validation(
            "rolloutPercentage must be between 0 and 100",
        ));
    }
    if let FlagValue::Number(n) = update.value
        && !n.is_finite()
    {
        return Err(Error::validation("a numeric flag value must be finite"));
    }
    let existing = find(db, &update.key, &update.environment).await?;
    let mut fields = vec![
        ("key".to_owned(), Value::String(update.key)),
        ("environment".to_owned(), Value::String(update.environment)),
        ("value".to_owned(), update.value.to_value()),
        ("rolloutPercentage".to_owned(), Value::Float64(p)),
        ("updatedAt".to_owned(), Value::Float64(now_ms)),
    ];
    if let Some(by) = update.updated_by {
        fields.push(("updatedBy".to_owned(), by.to_value()));
    }
    match existing {
        Some(doc) => {
            let created = doc
                .field("createdAt")
                .and_then(Value::as_f64)
                .unwrap_or(now_ms);
            fields.push(("createdAt".to_owned(), Value::Float64(created)));
            let previous = doc.field("value").and_then(FlagValue::from_value);
            db.replace(doc.id(), Value::object(fields)).await?;
            Ok((doc.id(), previous))
        }
        None => {
            fields.push(("createdAt".to_owned(), Value::Float64(now_ms)));
            let id = db.insert("featureFlags", Value::object(fields)).await?;
            Ok((id, None))
        }
    }
}

fn evaluated_validator() -> Validator {
    v::object([
        ("key", v::string()),
        ("environment", v::string()),
        (
            "value",
            v::union([v::string(), v::number(), v::boolean(), v::null()]),
        ),
    ])
}

/// The stored shape of a flag.
pub fn flag_validator() -> Validator {
    v::object([
        ("_id", v::id("featureFlags")),
        ("_creationTime", v::number()),
        ("key", v::string()),
        ("value", primitive_validator()),
        ("environment", v::string()),
        ("rolloutPercentage", v::number()),
        ("updatedBy", v::optional(v::id("users"))),
        ("createdAt", v::number()),
        ("updatedAt", v::number()),
    ])
}

fn evaluated(key: &str, environment: &str, value: Option<FlagValue>) -> Value {
    Value::object([
        ("key", Value::from(key)),
        ("environment", Value::from(environment)),
        ("value", value.map_or(Value::Null, |v| v.to_value())),
    ])
}

/// The rollout subject of a signed-in caller: their `users` id.
pub fn subject_of(user: &CurrentUser) -> String {
    user.id.to_string()
}

#[derive(Deserialize)]
struct GetFlagArgs {
    key: String,
    environment: Option<String>,
}

/// @summary Gets the value of a feature flag for the caller
///
/// @description Returns `{key, environment, value}` where `value` is what the
/// signed-in caller sees of flag `key` in `environment` (default
/// `production`): the flag's value when the caller is inside its rollout
/// percentage (a stable hash of the key and the caller's user id, so the
/// answer never flickers), or null when the flag is not set or the caller is
/// outside the rollout. Authorization: any signed-in, active caller; no
/// token is `UNAUTHORIZED`, a deactivated account `FORBIDDEN`. One index
/// point read; as a live query it updates when the flag changes.
///
/// @example request
/// ```json
/// {"args": {"key": "meetings.liveTranscription"}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {"key": "meetings.liveTranscription", "environment": "production", "value": true}
/// }
/// ```
#[macros::function(
    query,
    path = "system/featureFlags:getFlag",
    args = v::object([
        ("key", v::string()),
        ("environment", v::optional(v::string())),
    ]),
    returns = evaluated_validator()
)]
async fn get_flag(ctx: QueryCtx, args: GetFlagArgs) -> Result<Value> {
    let user = require_user(&ctx.db, &ctx.auth).await?;
    let environment = args.environment.as_deref().unwrap_or(DEFAULT_ENVIRONMENT);
    let value = evaluate(&ctx.db, &args.key, environment, &subject_of(&user)).await?;
    Ok(evaluated(&args.key, environment, value))
}

#[derive(Deserialize)]
struct ListFlagsArgs {
    environment: Option<String>,
}

/// The most flags `listFlags` returns.
const MAX_LISTED_FLAGS: usize = 1000;

/// @summary Lists the feature flags of an environment as the caller sees them
///
/// @description Returns every flag of `environment` (default `production`),
/// sorted by key, as `{key, environment, value}` evaluated for the signed-in
/// caller exactly as `system/featureFlags:getFlag` does (null outside the
/// rollout). Rollout percentages and who changed a flag are not exposed.
/// Authorization: any signed-in, active caller (`UNAUTHORIZED` without a
/// token). Reads one index range (at most 1,000 flags); as a live query it
/// updates when any flag of the environment changes.
///
/// @example request
/// ```json
/// {"args": {"environment": "production"}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": [
///     {"key": "meetings.liveTranscription", "environment": "production", "value": true},
///     {"key": "notes.maxCollaborators", "environment": "production", "value": 8}
///   ]
/// }
/// ```
#[macros::function(
    query,
    path = "system/featureFlags:listFlags",
    args = v::object([("environment", v::optional(v::string()))]),
    returns = v::array(evaluated_validator())
)]
async fn list_flags(ctx: QueryCtx, args: ListFlagsArgs) -> Result<Vec<Value>> {
    let user = require_user(&ctx.db, &ctx.auth).await?;
    let environment = args.environment.as_deref().unwrap_or(DEFAULT_ENVIRONMENT);
    let subject = subject_of(&user);
    let mut docs = ctx
        .db
        .query("featureFlags")
        .with_index("by_environment", |r| r.eq("environment", environment))
        .take(MAX_LISTED_FLAGS)
        .await?
        .into_iter()
        .filter_map(|d| {
            let key = d.field("key").and_then(Value::as_str)?.to_owned();
            Some((key, d))
        })
        .collect::<Vec<_>>();
    docs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(docs
        .iter()
        .map(|(key, doc)| evaluated(key, environment, evaluate_doc(doc, key, &subject)))
        .collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetFlagArgs {
    key: String,
    value: Value,
    environment: Option<String>,
    rollout_percentage: Option<f64>,
    updated_by: Option<Id<Users>>,
}

fn update_from(args: SetFlagArgs, updated_by: Option<Id<Users>>) -> Result<FlagUpdate> {
    let value = FlagValue::from_value(&args.value)
        .ok_or_else(|| Error::validation("value must be a string, number or boolean"))?;
    Ok(FlagUpdate {
        key: args.key,
        environment: args
            .environment
            .unwrap_or_else(|| DEFAULT_ENVIRONMENT.to_owned()),
        value,
        rollout_percentage: args.rollout_percentage.unwrap_or(100.0),
        updated_by,
    })
}

async fn read_flag(db: &DbReader, id: DocumentId) -> Result<Value> {
    db.get(id)
        .await?
        .map(Document::into_value)
        .ok_or_else(|| Error::internal("flag vanished after it was written"))
}

/// @summary Sets a feature flag on behalf of the operator
///
/// @description Internal (the operator's tool, e.g. from the dashboard or a
/// deploy script): creates or replaces flag `key` in `environment` (default
/// `production`) with `value` and `rolloutPercentage` (default 100), records
/// `updatedBy` when given, and returns the stored flag. This is also how the
/// operator organizations allowed to use `admin/featureFlags:setFlag` are
/// listed (`system.flagAdminOrgs`).
#[macros::function(
    internal_mutation,
    path = "system/featureFlags:setFlag",
    args = v::object([
        ("key", v::string()),
        ("value", primitive_validator()),
        ("environment", v::optional(v::string())),
        ("rolloutPercentage", v::optional(v::number())),
        ("updatedBy", v::optional(v::id("users"))),
    ]),
    returns = flag_validator()
)]
async fn set_flag_internal(ctx: MutationCtx, args: SetFlagArgs) -> Result<Value> {
    let by = args.updated_by;
    let (id, _) = set(&ctx.db, update_from(args, by)?, ctx.now_ms()).await?;
    read_flag(&ctx.db, id).await
}

/// Whether `user` may manage the flags of `environment` (see the module docs).
async fn is_flag_admin(db: &DbReader, user: &CurrentUser, environment: &str) -> Result<bool> {
    let (Some(org), Some(OrgRole::Admin)) = (&user.org_id, user.org_role) else {
        return Ok(false);
    };
    let allowed = find(db, FLAG_ADMIN_ORGS_KEY, environment)
        .await?
        .and_then(|d| d.field("value").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    Ok(allowed.split(',').map(str::trim).any(|o| o == org))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdminSetFlagArgs {
    key: String,
    value: Value,
    environment: Option<String>,
    rollout_percentage: Option<f64>,
}

/// @summary Sets a feature flag as an operator organization admin
///
/// @description Creates or replaces the deployment-wide flag `key` in
/// `environment` (default `production`) with `value` (string, number or
/// boolean) and `rolloutPercentage` (0–100, default 100) and returns the
/// stored flag. Authorization: the caller must be an admin (`role: admin` in
/// the token) of an operator organization, i.e. one listed in the
/// `system.flagAdminOrgs` flag of that environment (set by the operator
/// through an internal function); anyone else gets `FORBIDDEN`, and that
/// list itself cannot be changed here. Side effects: one flag write and one
/// audit log entry (`featureFlag.set`, with the previous and new value);
/// every live `getFlag`/`listFlags` query of the flag re-runs. A rollout
/// outside 0–100 or an empty key is a `VALIDATION_ERROR`.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "key": "meetings.liveTranscription",
///     "value": true,
///     "environment": "production",
///     "rolloutPercentage": 25
///   }
/// }
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "_id": "fzf219kmpm8zs2z0eyfmg37frwq6ehnxba30",
///     "_creationTime": 1768469400000.001,
///     "key": "meetings.liveTranscription",
///     "value": true,
///     "environment": "production",
///     "rolloutPercentage": 25,
///     "updatedBy": "awnxd9x975dmq9g6sejd33w69xyzpk7pgpdg",
///     "createdAt": 1768469400000,
///     "updatedAt": 1768469400000
///   }
/// }
/// ```
///
/// @example request-error
/// ```json
/// {
///   "args": {
///     "key": "meetings.liveTranscription",
///     "value": true,
///     "rolloutPercentage": 150
///   }
/// }
/// ```
///
/// @example response-error
/// ```json
/// {
///   "status": "error",
///   "errorMessage": "rolloutPercentage must be between 0 and 100",
///   "errorData": {
///     "code": "VALIDATION_ERROR",
///     "message": "rolloutPercentage must be between 0 and 100",
///     "statusCode": 400
///   }
/// }
/// ```
#[macros::function(
    mutation,
    path = "admin/featureFlags:setFlag",
    args = v::object([
        ("key", v::string()),
        ("value", primitive_validator()),
        ("environment", v::optional(v::string())),
        ("rolloutPercentage", v::optional(v::number())),
    ]),
    returns = flag_validator()
)]
async fn set_flag_as_admin(ctx: MutationCtx, args: AdminSetFlagArgs) -> Result<Value> {
    let user = require_user(&ctx.db, &ctx.auth).await?;
    let environment = args
        .environment
        .clone()
        .unwrap_or_else(|| DEFAULT_ENVIRONMENT.to_owned());
    if !is_flag_admin(&ctx.db, &user, &environment).await? {
        return Err(Error::forbidden(
            "Only admins of an operator organization can change feature flags",
        ));
    }
    if args.key == FLAG_ADMIN_ORGS_KEY {
        return Err(Error::forbidden(
            "The flag administrators are managed by the operator",
        ));
    }
    let update = update_from(
        SetFlagArgs {
            key: args.key,
            value: args.value,
            environment: Some(environment),
            rollout_percentage: args.rollout_percentage,
            updated_by: None,
        },
        Some(user.id),
    )?;
    let now = ctx.now_ms();
    let (key, env, new_value, rollout) = (
        update.key.clone(),
        update.environment.clone(),
        update.value.to_value(),
        update.rollout_percentage,
    );
    let (id, previous) = set(&ctx.db, update, now).await?;
    let mut entry = AuditEntry::new("featureFlag", id.to_string(), "featureFlag.set", now)
        .by(&user)
        .with("key", key)
        .with("environment", env)
        .with("value", new_value.to_json())
        .with("rolloutPercentage", rollout);
    if let Some(previous) = previous {
        entry = entry.with("previousValue", previous.to_value().to_json());
    }
    audit::record(&ctx.db, entry).await?;
    read_flag(&ctx.db, id).await
}

/// Registers `system/featureFlags:*` and `admin/featureFlags:setFlag`.
pub fn register(registry: &mut Registry) {
    registry.register(get_flag_spec());
    registry.register(list_flags_spec());
    registry.register(set_flag_internal_spec());
    registry.register(set_flag_as_admin_spec());
}
