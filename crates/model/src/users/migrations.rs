//! `migrations/createMissingProfiles`: one-off data migrations, internal.

use errors::Result;
use runtime::{MutationCtx, Registry};
use values::{Value, v};

use super::{email_local_part, str_field, user_id};
use crate::profiles::{self, ProfileFields};

/// @summary Creates a default profile for every user without one
///
/// @description Internal: scans `users` and inserts a default profile
/// (display name from the user, else the email's local part; no languages)
/// wherever one is missing. Returns counts and per-user errors.
#[macros::function(
    internal_mutation,
    path = "migrations/createMissingProfiles:createMissingProfiles",
    returns = v::object([
        ("processedUsers", v::number()),
        ("profilesCreated", v::number()),
        ("alreadyHadProfiles", v::number()),
        ("errors", v::array(v::string())),
    ])
)]
async fn create_missing_profiles(ctx: MutationCtx, _args: Value) -> Result<Value> {
    let now = ctx.now_ms();
    let users = ctx.db.query("users").collect().await?;
    let (mut created, mut had) = (0usize, 0usize);
    let mut errors = Vec::new();
    for doc in &users {
        let id = user_id(doc)?;
        if profiles::profile_doc(&ctx.db, id).await?.is_some() {
            had += 1;
            continue;
        }
        let name = str_field(doc, "displayName")
            .map(str::to_owned)
            .unwrap_or_else(|| email_local_part(str_field(doc, "email").unwrap_or("")).to_owned());
        match profiles::upsert_profile(&ctx.db, id, &ProfileFields::default(), &name, now).await {
            Ok(_) => created += 1,
            Err(e) => errors.push(Value::String(format!("{id}: {}", e.message()))),
        }
    }
    Ok(Value::object([
        (
            "processedUsers".to_owned(),
            Value::Float64(users.len() as f64),
        ),
        ("profilesCreated".to_owned(), Value::Float64(created as f64)),
        ("alreadyHadProfiles".to_owned(), Value::Float64(had as f64)),
        ("errors".to_owned(), Value::Array(errors)),
    ]))
}

/// Registers the migrations.
pub fn register(registry: &mut Registry) {
    registry.register(create_missing_profiles_spec());
}
