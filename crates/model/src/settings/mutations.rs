//! `settings/mutations:*`.

use errors::Result;
use runtime::{MutationCtx, Registry};
use serde::Deserialize;
use values::{Value, v};

use super::{Settings, settings_doc};
use crate::auth::require_user;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateSettingsArgs {
    email_notifications: Option<bool>,
    push_notifications: Option<bool>,
    sms_notifications: Option<bool>,
    profile_visibility: Option<bool>,
    data_sharing: Option<bool>,
    activity_tracking: Option<bool>,
}

impl UpdateSettingsArgs {
    fn fields(&self) -> [(&'static str, Option<bool>); 6] {
        [
            ("emailNotifications", self.email_notifications),
            ("pushNotifications", self.push_notifications),
            ("smsNotifications", self.sms_notifications),
            ("profileVisibility", self.profile_visibility),
            ("dataSharing", self.data_sharing),
            ("activityTracking", self.activity_tracking),
        ]
    }
}

/// @summary Updates the caller's settings
///
/// @description Sets any of the caller's notification channels
/// (`emailNotifications`, `pushNotifications`, `smsNotifications`) and
/// privacy switches (`profileVisibility`, `dataSharing`,
/// `activityTracking`); fields left out keep their value. Creates the
/// settings document with the defaults on first use and returns its id.
/// Privacy switches take effect at once: with `profileVisibility: false`
/// other users no longer read the caller's profile or avatar, with
/// `activityTracking: false` `lastSeenAt` stops being recorded (and is
/// cleared). Only the caller's own settings: requires a signed-in,
/// provisioned, active caller (`UNAUTHORIZED` / `FORBIDDEN`). One document
/// write.
///
/// @example request
/// ```json
/// {"args": {"pushNotifications": false}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": "xcz7rfwd8ppv7a6404prxgka602sraataf30"}
/// ```
#[macros::function(
    mutation,
    path = "settings/mutations:updateSettings",
    args = v::object([
        ("emailNotifications", v::optional(v::boolean())),
        ("pushNotifications", v::optional(v::boolean())),
        ("smsNotifications", v::optional(v::boolean())),
        ("profileVisibility", v::optional(v::boolean())),
        ("dataSharing", v::optional(v::boolean())),
        ("activityTracking", v::optional(v::boolean())),
    ]),
    returns = v::id("userSettings")
)]
async fn update_settings(ctx: MutationCtx, args: UpdateSettingsArgs) -> Result<String> {
    let user = require_user(&ctx.db, &ctx.auth).await?;
    let now = ctx.now_ms();
    let id = match settings_doc(&ctx.db, user.id).await? {
        Some(doc) => {
            let mut patch = vec![("updatedAt".to_owned(), Value::Float64(now))];
            for (name, value) in args.fields() {
                if let Some(b) = value {
                    patch.push((name.to_owned(), Value::Boolean(b)));
                }
            }
            ctx.db.patch(doc.id(), Value::object(patch)).await?;
            doc.id()
        }
        None => {
            let d = Settings::default();
            let mut fields = vec![
                ("userId".to_owned(), user.id.to_value()),
                ("createdAt".to_owned(), Value::Float64(now)),
                ("updatedAt".to_owned(), Value::Float64(now)),
            ];
            let defaults = [
                d.email_notifications,
                d.push_notifications,
                d.sms_notifications,
                d.profile_visibility,
                d.data_sharing,
                d.activity_tracking,
            ];
            for ((name, value), default) in args.fields().into_iter().zip(defaults) {
                fields.push((name.to_owned(), Value::Boolean(value.unwrap_or(default))));
            }
            ctx.db.insert("userSettings", Value::object(fields)).await?
        }
    };
    if args.activity_tracking == Some(false) && user.doc.field("lastSeenAt").is_some() {
        ctx.db
            .patch_fields(
                user.id.raw(),
                [("lastSeenAt".to_owned(), None)].into_iter().collect(),
            )
            .await?;
    }
    Ok(id.encode())
}

/// Registers `settings/mutations:*`.
pub fn register(registry: &mut Registry) {
    registry.register(update_settings_spec());
}
