//! `profiles/mutations:*`: the caller's own profile.

use errors::{Error, Result};
use runtime::{MutationCtx, Registry};
use values::v;

use super::{ProfileFields, profile_field_args, upsert_profile};
use crate::auth::require_user;
use crate::users::{email_local_part, str_field};

/// @summary Updates the caller's profile
///
/// @description Sets the given fields of the caller's own profile
/// (`displayName`, `bio`, `goals`, `languages`, `experience`, `field`,
/// `jobTitle`, `company`, `linkedinUrl`, `age`, `gender`); fields left out
/// keep their value and an empty string clears an optional text field.
/// Creates the profile if missing (display name from the argument, else the
/// user's name, else the email's local part). Validation, which the original
/// lacked, gives `VALIDATION_ERROR` with `metadata.field`: blank or over 100
/// character display name, texts over 1000 (bio, goals, experience) or 200
/// characters, more than 20 languages, an age outside 13..120, a LinkedIn
/// URL that is not `https://…linkedin.com`. Requires a signed-in,
/// provisioned, active caller. Returns the profile id.
///
/// @example request
/// ```json
/// {"args": {"jobTitle": "Principal Engineer", "company": "Analytical Engines Ltd"}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": "wqp5t42e06tcw43j1pg76q8615ajzmsqjes0"}
/// ```
///
/// @example request-error
/// ```json
/// {"args": {"age": 7}}
/// ```
///
/// @example response-error
/// ```json
/// {
///   "status": "error",
///   "errorMessage": "Invalid age: must be a whole number from 13 to 120",
///   "errorData": {
///     "code": "VALIDATION_ERROR",
///     "message": "Invalid age: must be a whole number from 13 to 120",
///     "statusCode": 400,
///     "metadata": {"field": "age"}
///   }
/// }
/// ```
#[macros::function(
    mutation,
    path = "profiles/mutations:updateProfile",
    args = v::object(profile_field_args()),
    returns = v::id("profiles")
)]
async fn update_profile(ctx: MutationCtx, args: ProfileFields) -> Result<String> {
    let user = require_user(&ctx.db, &ctx.auth).await?;
    let default_name = str_field(&user.doc, "displayName")
        .map(str::to_owned)
        .unwrap_or_else(|| {
            email_local_part(str_field(&user.doc, "email").unwrap_or("")).to_owned()
        });
    let id = upsert_profile(&ctx.db, user.id, &args, &default_name, ctx.now_ms()).await?;
    Ok(id.raw().encode())
}

/// @summary Creates the caller's profile
///
/// @description Creates the caller's profile with `displayName` (required)
/// and any of the optional fields of `profiles/mutations:updateProfile`; if
/// the caller already has a profile it is updated with the given fields
/// instead, so calling it twice is harmless. Same validation as
/// `updateProfile` (`VALIDATION_ERROR` with `metadata.field`). Only the
/// caller's own profile: requires a signed-in, provisioned, active caller
/// (`UNAUTHORIZED` / `FORBIDDEN`). Returns the profile id.
///
/// @example request
/// ```json
/// {"args": {"displayName": "Ada Lovelace", "bio": "Analytical engine programmer and mathematician.", "languages": ["English", "French"]}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": "wqp5t42e06tcw43j1pg76q8615ajzmsqjes0"}
/// ```
#[macros::function(
    mutation,
    path = "profiles/mutations:createProfile",
    args = {
        let mut fields = profile_field_args();
        fields.retain(|(name, _)| *name != "displayName");
        fields.push(("displayName", v::string()));
        v::object(fields)
    },
    returns = v::id("profiles")
)]
async fn create_profile(ctx: MutationCtx, args: ProfileFields) -> Result<String> {
    let user = require_user(&ctx.db, &ctx.auth).await?;
    let name = args
        .display_name
        .clone()
        .ok_or_else(|| Error::validation("displayName is required"))?;
    let id = upsert_profile(&ctx.db, user.id, &args, &name, ctx.now_ms()).await?;
    Ok(id.raw().encode())
}

/// Registers `profiles/mutations:*`.
pub fn register(registry: &mut Registry) {
    registry.register(update_profile_spec());
    registry.register(create_profile_spec());
}
