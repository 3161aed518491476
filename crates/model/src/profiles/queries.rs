//! `profiles/queries:*`.

use errors::{ErrorCode, Result};
use runtime::{QueryCtx, Registry};
use serde::Deserialize;
use values::{Value, v};

use super::{profile_doc, profile_validator, public_profile_validator, public_view};
use crate::auth::require_user;
use crate::ids::{Id, Users};
use crate::settings;
use crate::users::bool_field;

/// @summary Gets the caller's own profile
///
/// @description Returns the caller's full `profiles` document (including
/// age, gender and LinkedIn URL, which others never see), or `null` when the
/// caller is not signed in, not provisioned yet or has no profile — the web
/// app reads it while sign-in is still completing. A deactivated account is
/// refused with `FORBIDDEN`. Reads the caller's user row and one index
/// entry; as a live query it updates whenever the profile changes.
///
/// @example request
/// ```json
/// {"args": {}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "_id": "wqp5t42e06tcw43j1pg76q8615ajzmsqjes0",
///     "_creationTime": 1768469400000.002,
///     "userId": "22k2b8faxw354j6qw680mkfk75yzpk7pgt20",
///     "displayName": "Ada Lovelace",
///     "bio": "Analytical engine programmer and mathematician.",
///     "languages": ["English", "French"],
///     "age": 36,
///     "gender": "female",
///     "field": "Mathematics",
///     "jobTitle": "Lead Engineer",
///     "company": "Analytical Engines Ltd",
///     "linkedinUrl": "https://www.linkedin.com/in/ada-lovelace",
///     "createdAt": 1768469400000,
///     "updatedAt": 1768469400000
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "profiles/queries:getCurrentUserProfile",
    returns = v::union([profile_validator(), v::null()])
)]
async fn get_current_user_profile(ctx: QueryCtx, _args: Value) -> Result<Value> {
    let user = match require_user(&ctx.db, &ctx.auth).await {
        Ok(user) => user,
        Err(e) if e.code() == ErrorCode::Unauthorized => return Ok(Value::Null),
        Err(e) => return Err(e),
    };
    Ok(profile_doc(&ctx.db, user.id)
        .await?
        .map_or(Value::Null, |d| d.into_value()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserIdArgs {
    user_id: Id<Users>,
}

/// @summary Gets another user's public profile
///
/// @description Returns the public part of a user's profile (`displayName`,
/// `bio`, `goals`, `languages`, `experience`, `field`, `jobTitle`,
/// `company`; never age, gender, LinkedIn URL or timestamps). Gives `null`
/// when the user has no profile, is deactivated or deleted, or has turned
/// `profileVisibility` off in their settings (the original ignored that
/// setting); the owner always sees their own. Requires a signed-in,
/// provisioned, active caller (`UNAUTHORIZED` / `FORBIDDEN`). Reads the
/// target's user row, settings and profile; live.
///
/// @example request
/// ```json
/// {"args": {"userId": "3w2bffyqxsrdzstkfq19r8c86xyzpk7p4hkg"}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "_id": "1qtrnr977vp631md1a4mbba4adajzmsqgvj0",
///     "userId": "3w2bffyqxsrdzstkfq19r8c86xyzpk7p4hkg",
///     "displayName": "Grace Hopper",
///     "bio": "Compiler pioneer; ask me about COBOL.",
///     "languages": ["English"],
///     "field": "Computer Science",
///     "jobTitle": "Rear Admiral",
///     "company": "US Navy"
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "profiles/queries:getProfileByUserIdPublic",
    args = v::object([("userId", v::id("users"))]),
    returns = v::union([public_profile_validator(), v::null()])
)]
async fn get_profile_by_user_id_public(ctx: QueryCtx, args: UserIdArgs) -> Result<Value> {
    let caller = require_user(&ctx.db, &ctx.auth).await?;
    if caller.id != args.user_id {
        let Some(target) = ctx.db.get(args.user_id.raw()).await? else {
            return Ok(Value::Null);
        };
        if bool_field(&target, "isActive") != Some(true)
            || !settings::profile_public(&ctx.db, args.user_id).await?
        {
            return Ok(Value::Null);
        }
    }
    Ok(profile_doc(&ctx.db, args.user_id)
        .await?
        .map_or(Value::Null, |d| public_view(&d)))
}

/// @summary Gets a user's profile document
///
/// @description Internal: the full profile document of any user, or `null`.
/// Used by other domains (prompts, matching); not callable by clients.
#[macros::function(
    internal_query,
    path = "profiles/queries:getProfileByUserId",
    args = v::object([("userId", v::id("users"))]),
    returns = v::union([profile_validator(), v::null()])
)]
async fn get_profile_by_user_id(ctx: QueryCtx, args: UserIdArgs) -> Result<Value> {
    Ok(profile_doc(&ctx.db, args.user_id)
        .await?
        .map_or(Value::Null, |d| d.into_value()))
}

/// Registers `profiles/queries:*`.
pub fn register(registry: &mut Registry) {
    registry.register(get_current_user_profile_spec());
    registry.register(get_profile_by_user_id_public_spec());
    registry.register(get_profile_by_user_id_spec());
}
