//! `interests/queries:*`: the catalog, a user's interests (internal) and the
//! seeding mutation run at start-up (internal).

use std::collections::BTreeSet;

use database::Order;
use errors::{Error, Result};
use runtime::{MutationCtx, QueryCtx, Registry};
use serde::Deserialize;
use values::{Value, v};

use super::{CUSTOM_CATEGORY, catalog_entry_validator, catalog_view, user_interest_docs};
use crate::auth::require_user;
use crate::ids::{Id, Users};

/// Default and largest `limit` of `listCatalog`.
const DEFAULT_LIMIT: usize = 200;
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
struct ListCatalogArgs {
    category: Option<String>,
    limit: Option<f64>,
}

/// @summary Lists the interest catalog
///
/// @description Returns catalog entries (`key`, `label`, `category`,
/// `iconName`, `usageCount`), newest first, optionally only those of one
/// `category`, at most `limit` (default 200, at most 1000). Custom interests
/// (category `custom`, created during onboarding) are personal: each caller
/// sees only the custom interests they chose or created. Requires a
/// signed-in, provisioned, active caller (`UNAUTHORIZED` / `FORBIDDEN`; the
/// original allowed anonymous reads). A `limit` outside 1..1000 is a
/// `VALIDATION_ERROR`. Reads one index range plus the caller's interests.
///
/// @example request
/// ```json
/// {"args": {"category": "industry", "limit": 2}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": [
///     {"key": "product-management", "label": "Product Management", "category": "industry", "iconName": "Briefcase", "usageCount": 0},
///     {"key": "data-science", "label": "Data Science", "category": "industry", "iconName": "Code", "usageCount": 0}
///   ]
/// }
/// ```
#[macros::function(
    query,
    path = "interests/queries:listCatalog",
    args = v::object([
        ("category", v::optional(v::string())),
        ("limit", v::optional(v::number())),
    ]),
    returns = v::array(catalog_entry_validator())
)]
async fn list_catalog(ctx: QueryCtx, args: ListCatalogArgs) -> Result<Vec<Value>> {
    let user = require_user(&ctx.db, &ctx.auth).await?;
    let limit = match args.limit {
        None => DEFAULT_LIMIT,
        Some(l) if l.is_finite() && (1.0..=MAX_LIMIT as f64).contains(&l) => l as usize,
        Some(l) => {
            return Err(Error::validation(format!(
                "limit must be between 1 and {MAX_LIMIT}, got {l}"
            )));
        }
    };
    let mine: BTreeSet<String> = user_interest_docs(&ctx.db, user.id)
        .await?
        .iter()
        .filter_map(|d| d.field("interestKey").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    let me = user.id.to_value();
    let visible = move |d: &database::Document| {
        d.field("category").and_then(Value::as_str) != Some(CUSTOM_CATEGORY)
            || d.field("createdBy") == Some(&me)
            || d.field("key")
                .and_then(Value::as_str)
                .is_some_and(|k| mine.contains(k))
    };
    let query = match &args.category {
        Some(category) => ctx
            .db
            .query("interests")
            .with_index("by_category", |r| r.eq("category", category.as_str())),
        None => ctx.db.query("interests"),
    };
    let docs = query.order(Order::Desc).filter(visible).take(limit).await?;
    Ok(docs.iter().map(|d| catalog_view(d, true)).collect())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserIdArgs {
    user_id: Id<Users>,
}

/// @summary Gets a user's interests
///
/// @description Internal: the user's interests joined with the catalog
/// (`key`, `label`, `category`, `iconName`), dropping keys missing from the
/// catalog. Used by other domains (matching, prompts); not callable by
/// clients.
#[macros::function(
    internal_query,
    path = "interests/queries:getUserInterests",
    args = v::object([("userId", v::id("users"))]),
    returns = v::array(v::object([
        ("key", v::string()),
        ("label", v::string()),
        ("category", v::string()),
        ("iconName", v::optional(v::string())),
    ]))
)]
async fn get_user_interests(ctx: QueryCtx, args: UserIdArgs) -> Result<Vec<Value>> {
    super::user_interests(&ctx.db, args.user_id).await
}

/// @summary Seeds the default interest catalog
///
/// @description Internal: inserts the six default catalog entries if the
/// catalog is empty; does nothing otherwise. Run at every start-up by
/// `model::on_start`.
#[macros::function(internal_mutation, path = "interests/queries:seedDefault", returns = v::null())]
async fn seed_default(ctx: MutationCtx, _args: Value) -> Result<Value> {
    let inserted = super::seed_if_empty(&ctx.db, ctx.now_ms()).await?;
    if inserted > 0 {
        ctx.log(&format!("seeded {inserted} catalog interests"));
    }
    Ok(Value::Null)
}

/// Registers `interests/queries:*`.
pub fn register(registry: &mut Registry) {
    registry.register(list_catalog_spec());
    registry.register(get_user_interests_spec());
    registry.register(seed_default_spec());
}
