//! `settings/queries:*`.

use errors::{ErrorCode, Result};
use runtime::{QueryCtx, Registry};
use values::{Value, v};

use super::{settings_doc, settings_validator};
use crate::auth::require_user;

/// @summary Gets the caller's settings
///
/// @description Returns the caller's `userSettings` document (notification
/// channels and privacy switches), or `null` when the caller never saved any
/// settings, in which case the defaults apply (email and push on, SMS off,
/// public profile, no data sharing, activity tracking on). Like
/// `users/queries:getCurrentUser` it is also `null` for a caller who is not
/// signed in or not provisioned yet (the original threw there, unlike the
/// other current-user queries); a deactivated account is `FORBIDDEN`. Reads
/// one index entry; as a live query it updates when the settings change.
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
///     "_id": "xcz7rfwd8ppv7a6404prxgka602sraataf30",
///     "_creationTime": 1768469400000.001,
///     "userId": "22k2b8faxw354j6qw680mkfk75yzpk7pgt20",
///     "emailNotifications": true,
///     "pushNotifications": false,
///     "smsNotifications": false,
///     "profileVisibility": true,
///     "dataSharing": false,
///     "activityTracking": true,
///     "createdAt": 1768469400000,
///     "updatedAt": 1768469400000
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "settings/queries:getCurrentUserSettings",
    returns = v::union([settings_validator(), v::null()])
)]
async fn get_current_user_settings(ctx: QueryCtx, _args: Value) -> Result<Value> {
    let user = match require_user(&ctx.db, &ctx.auth).await {
        Ok(user) => user,
        Err(e) if e.code() == ErrorCode::Unauthorized => return Ok(Value::Null),
        Err(e) => return Err(e),
    };
    Ok(settings_doc(&ctx.db, user.id)
        .await?
        .map_or(Value::Null, |d| d.into_value()))
}

/// Registers `settings/queries:*`.
pub fn register(registry: &mut Registry) {
    registry.register(get_current_user_settings_spec());
}
