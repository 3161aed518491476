//! `users/queries:*`.

use database::{Order, Page};
use errors::{ErrorCode, Result};
use runtime::{PaginationOptsArg, QueryCtx, Registry, page_to_value, pagination_opts_validator};
use serde::Deserialize;
use values::{Validator, Value, v};

use super::{
    bool_field, get_user, public_user_validator, public_user_view, str_field, user_by_workos_id,
    user_validator,
};
use crate::auth::{CurrentUser, require_user};
use crate::ids::{Id, Users};
use crate::{profiles, settings};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserIdArgs {
    user_id: Id<Users>,
}

/// The caller, or `None` when signed out or not provisioned (a deactivated
/// account is still an error).
async fn optional_user(ctx: &QueryCtx) -> Result<Option<CurrentUser>> {
    match require_user(&ctx.db, &ctx.auth).await {
        Ok(user) => Ok(Some(user)),
        Err(e) if e.code() == ErrorCode::Unauthorized => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `caller` may read everything about the user document `target`:
/// it is the caller, or the caller is an admin (token role) of the
/// organization the target belongs to.
fn sees_everything(caller: &CurrentUser, target: &database::Document) -> bool {
    caller.id.raw() == target.id() || caller.is_admin_of(str_field(target, "orgId"))
}

/// @summary Gets the signed-in user
///
/// @description Returns the caller's own `users` document (email, WorkOS id,
/// organization and role from the last sign-in's token, onboarding flags,
/// where the email came from), or `null` when the caller is not signed in or
/// not provisioned yet (the web app polls it while `upsertUser` runs). A
/// deactivated account is refused with `FORBIDDEN`. Reads one index entry;
/// live.
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
///     "_id": "22k2b8faxw354j6qw680mkfk75yzpk7pgt20",
///     "_creationTime": 1768469400000.001,
///     "workosUserId": "user_01JH7ZK3QX5T8B2M9W4N6P0RCD",
///     "email": "ada@example.com",
///     "emailVerified": true,
///     "profileSource": "token",
///     "orgId": "org_01JH7ZM2V8K4R6T1Y3B5N7Q9WX",
///     "orgRole": "admin",
///     "displayName": "Ada Lovelace",
///     "isActive": true,
///     "lastSeenAt": 1768469400000,
///     "createdAt": 1768469400000,
///     "updatedAt": 1768469400000
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "users/queries:getCurrentUser",
    returns = v::union([user_validator(), v::null()])
)]
async fn get_current_user(ctx: QueryCtx, _args: Value) -> Result<Value> {
    Ok(optional_user(&ctx)
        .await?
        .map_or(Value::Null, |u| u.doc.into_value()))
}

/// @summary Gets a user by id, as the caller may see them
///
/// @description Returns the full `users` document to the user themself and
/// to admins (token role `admin`) of the user's organization; every other
/// signed-in caller gets the public view only: `_id`, `displayName`,
/// `isActive`, and `avatarUrl` unless the user's profile is private — never
/// the email or WorkOS id (the original returned everything to anyone,
/// anonymous callers included). `null` for an unknown id. Requires a
/// signed-in, provisioned, active caller (`UNAUTHORIZED` / `FORBIDDEN`).
/// Reads the target's user row and settings; live.
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
///     "_id": "3w2bffyqxsrdzstkfq19r8c86xyzpk7p4hkg",
///     "displayName": "Katherine Johnson",
///     "isActive": true
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "users/queries:getUserById",
    args = v::object([("userId", v::id("users"))]),
    returns = v::union([user_validator(), public_user_validator(), v::null()])
)]
async fn get_user_by_id(ctx: QueryCtx, args: UserIdArgs) -> Result<Value> {
    let caller = require_user(&ctx.db, &ctx.auth).await?;
    let Some(target) = ctx.db.get(args.user_id.raw()).await? else {
        return Ok(Value::Null);
    };
    if sees_everything(&caller, &target) {
        return Ok(target.into_value());
    }
    let private = !settings::profile_public(&ctx.db, args.user_id).await?;
    Ok(public_user_view(&target, private))
}

fn user_summary_validator() -> Validator {
    v::object([
        ("_id", v::id("users")),
        ("displayName", v::optional(v::string())),
        ("avatarUrl", v::optional(v::string())),
        ("isActive", v::boolean()),
        ("orgId", v::optional(v::string())),
        ("orgRole", v::optional(v::string())),
    ])
}

/// @summary Gets a user's display summary
///
/// @description Returns `_id`, `displayName`, `avatarUrl` and `isActive` of
/// a user, plus `orgId` and `orgRole` when the caller belongs to the same
/// organization (by the caller's token; the original also showed them to an
/// admin of any organization). The avatar is left out when the user's
/// profile is private, except for the user themself. `null` for an unknown
/// id. Requires a signed-in, provisioned, active caller (`UNAUTHORIZED` /
/// `FORBIDDEN`). Reads the target's row and settings; live.
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
///     "_id": "3w2bffyqxsrdzstkfq19r8c86xyzpk7p4hkg",
///     "displayName": "Grace Hopper",
///     "isActive": true,
///     "orgId": "org_01JH7ZM2V8K4R6T1Y3B5N7Q9WX",
///     "orgRole": "member"
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "users/queries:getUserProfile",
    args = v::object([("userId", v::id("users"))]),
    returns = v::union([user_summary_validator(), v::null()])
)]
async fn get_user_profile(ctx: QueryCtx, args: UserIdArgs) -> Result<Value> {
    let caller = require_user(&ctx.db, &ctx.auth).await?;
    let Some(target) = ctx.db.get(args.user_id.raw()).await? else {
        return Ok(Value::Null);
    };
    let is_self = caller.id == args.user_id;
    let private = !is_self && !settings::profile_public(&ctx.db, args.user_id).await?;
    let mut view = public_user_view(&target, private);
    let target_org = str_field(&target, "orgId");
    if target_org.is_some()
        && (is_self || caller.org_id.as_deref() == target_org)
        && let Some(map) = view.as_object_mut()
    {
        for name in ["orgId", "orgRole"] {
            if let Some(v) = target.field(name) {
                map.insert(name.to_owned(), v.clone());
            }
        }
    }
    Ok(view)
}

fn onboarding_state_validator() -> Validator {
    v::object([
        ("userId", v::id("users")),
        ("onboardingComplete", v::boolean()),
        ("profileExists", v::boolean()),
        ("profileId", v::optional(v::id("profiles"))),
        ("completedAt", v::optional(v::number())),
    ])
}

/// @summary Gets the caller's onboarding state
///
/// @description Returns whether the caller finished onboarding
/// (`onboardingComplete`, `completedAt`) and whether they have a profile
/// (`profileExists`, `profileId`); the onboarding page uses it to decide
/// what to show. Requires a signed-in, provisioned, active caller
/// (`UNAUTHORIZED` before `users/mutations:upsertUser`, `FORBIDDEN` when
/// deactivated). Reads the caller's row and profile index entry; live.
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
///     "userId": "22k2b8faxw354j6qw680mkfk75yzpk7pgt20",
///     "onboardingComplete": true,
///     "profileExists": true,
///     "profileId": "wqp5t42e06tcw43j1pg76q8615ajzmsqjes0",
///     "completedAt": 1768469400000
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "users/queries:getOnboardingState",
    returns = onboarding_state_validator()
)]
async fn get_onboarding_state(ctx: QueryCtx, _args: Value) -> Result<Value> {
    let user = require_user(&ctx.db, &ctx.auth).await?;
    let profile = profiles::profile_doc(&ctx.db, user.id).await?;
    let mut fields = vec![
        ("userId".to_owned(), user.id.to_value()),
        (
            "onboardingComplete".to_owned(),
            Value::Boolean(bool_field(&user.doc, "onboardingComplete").unwrap_or(false)),
        ),
        (
            "profileExists".to_owned(),
            Value::Boolean(profile.is_some()),
        ),
    ];
    if let Some(p) = &profile {
        fields.push(("profileId".to_owned(), Value::String(p.id().encode())));
    }
    if let Some(t) = user.doc.field("onboardingCompletedAt") {
        fields.push(("completedAt".to_owned(), t.clone()));
    }
    Ok(Value::object(fields))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListArgs {
    pagination_opts: PaginationOptsArg,
}

/// @summary Lists the active users of the caller's organization
///
/// @description Pages through the active users whose last sign-in was into
/// the caller's organization (the org of the caller's token, never an
/// argument), newest first, as public views (`_id`, `displayName`,
/// `avatarUrl` unless the profile is private, `isActive`). A caller whose
/// token has no organization gets an empty last page. Standard Convex
/// pagination (`paginationOpts` as `usePaginatedQuery` sends it; the
/// original rejected its extra fields). Requires a signed-in, provisioned,
/// active caller (`UNAUTHORIZED` / `FORBIDDEN`). One index range plus one
/// settings read per user; live.
///
/// @example request
/// ```json
/// {"args": {"paginationOpts": {"numItems": 10, "cursor": null}}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "page": [
///       {"_id": "3w2bffyqxsrdzstkfq19r8c86xyzpk7p4hkg", "displayName": "Grace Hopper", "isActive": true},
///       {"_id": "22k2b8faxw354j6qw680mkfk75yzpk7pgt20", "displayName": "Ada Lovelace", "isActive": true}
///     ],
///     "isDone": true,
///     "continueCursor": "WyJvcmdfMDFKSDdaTTRBNUI2QzdEOEU5RjBHMUgySjMiXQ"
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "users/queries:listActiveUsersInOrg",
    args = v::object([("paginationOpts", pagination_opts_validator())]),
    returns = v::object([
        ("page", v::array(public_user_validator())),
        ("isDone", v::boolean()),
        ("continueCursor", v::string()),
    ])
)]
async fn list_active_users_in_org(ctx: QueryCtx, args: ListArgs) -> Result<Value> {
    let caller = require_user(&ctx.db, &ctx.auth).await?;
    let opts = args.pagination_opts.to_opts()?;
    let Some(org) = caller.org_id.clone() else {
        return page_to_value(Page::<Value> {
            page: Vec::new(),
            is_done: true,
            continue_cursor: String::new(),
        });
    };
    let page = ctx
        .db
        .query("users")
        .with_index("by_org_and_active", |r| {
            r.eq("orgId", org.as_str()).eq("isActive", true)
        })
        .order(Order::Desc)
        .paginate(opts)
        .await?;
    let mut items = Vec::with_capacity(page.page.len());
    for doc in &page.page {
        let id = super::user_id(doc)?;
        let private = id != caller.id && !settings::profile_public(&ctx.db, id).await?;
        items.push(public_user_view(doc, private));
    }
    page_to_value(Page {
        page: items,
        is_done: page.is_done,
        continue_cursor: page.continue_cursor,
    })
}

/// @summary Exports all of the caller's data
///
/// @description Returns everything stored about the caller as one JSON
/// object: `userId`, `exportedAt` and `sections`, one entry per table group
/// (`users`, `profiles`, `userSettings`, `userInterests`, `customInterests`,
/// `workos`, and the sections other domains register, such as meetings and
/// messages), each holding the caller's documents as stored. Only the
/// caller's own data: requires a signed-in, provisioned, active caller
/// (`UNAUTHORIZED` / `FORBIDDEN`). Reads every index range of the caller's
/// rows, so its cost grows with the account's history.
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
///     "userId": "22k2b8faxw354j6qw680mkfk75yzpk7pgt20",
///     "exportedAt": 1768469400000,
///     "sections": {
///       "users": [
///         {
///           "_id": "22k2b8faxw354j6qw680mkfk75yzpk7pgt20",
///           "_creationTime": 1768469400000.001,
///           "workosUserId": "user_01JH7ZK3QX5T8B2M9W4N6P0RCD",
///           "email": "ada@example.com",
///           "emailVerified": true,
///           "profileSource": "token",
///           "orgId": "org_01JH7ZM2V8K4R6T1Y3B5N7Q9WX",
///           "orgRole": "admin",
///           "displayName": "Ada Lovelace",
///           "isActive": true,
///           "lastSeenAt": 1768469400000,
///           "createdAt": 1768469400000,
///           "updatedAt": 1768469400000
///         }
///       ],
///       "profiles": [
///         {
///           "_id": "wqp5t42e06tcw43j1pg76q8615ajzmsqjes0",
///           "_creationTime": 1768469400000.002,
///           "userId": "22k2b8faxw354j6qw680mkfk75yzpk7pgt20",
///           "displayName": "Ada Lovelace",
///           "languages": [],
///           "createdAt": 1768469400000,
///           "updatedAt": 1768469400000
///         }
///       ],
///       "userSettings": [],
///       "userInterests": [],
///       "customInterests": [],
///       "workos": [],
///       "meetings": [],
///       "meetingParticipants": [],
///       "meetingEvents": [],
///       "messages": [],
///       "noteOps": [],
///       "offlineCheckpoints": [],
///       "offlineOperationQueue": [],
///       "transcripts": [],
///       "transcriptSegments": []
///     }
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "users/queries:exportMyData",
    returns = v::object([
        ("userId", v::id("users")),
        ("exportedAt", v::number()),
        ("sections", v::record(v::string(), v::array(v::any()))),
    ])
)]
async fn export_my_data(ctx: QueryCtx, _args: Value) -> Result<Value> {
    let user = require_user(&ctx.db, &ctx.auth).await?;
    let mut sections = Vec::new();
    for section in crate::data_sections() {
        let docs = (section.export)(&ctx.db, &user).await?;
        sections.push((section.name.to_owned(), Value::Array(docs)));
    }
    Ok(Value::object([
        ("userId".to_owned(), user.id.to_value()),
        ("exportedAt".to_owned(), Value::Float64(ctx.now_ms())),
        ("sections".to_owned(), Value::object(sections)),
    ]))
}

/// @summary Gets a user by id
///
/// @description Internal: any user's full document, or `null`. Not callable
/// by clients.
#[macros::function(
    internal_query,
    path = "users/queries:getUserByIdInternal",
    args = v::object([("userId", v::id("users"))]),
    returns = v::union([user_validator(), v::null()])
)]
async fn get_user_by_id_internal(ctx: QueryCtx, args: UserIdArgs) -> Result<Value> {
    Ok(match get_user(&ctx.db, args.user_id).await {
        Ok(doc) => doc.into_value(),
        Err(e) if e.code() == ErrorCode::NotFound => Value::Null,
        Err(e) => return Err(e),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkosIdArgs {
    workos_user_id: String,
}

/// @summary Gets a user by WorkOS id
///
/// @description Internal: the user whose `workosUserId` is given, or
/// `null`. Used by actions to resolve a token subject. Not callable by
/// clients.
#[macros::function(
    internal_query,
    path = "users/queries:getUserByWorkosId",
    args = v::object([("workosUserId", v::string())]),
    returns = v::union([user_validator(), v::null()])
)]
async fn get_user_by_workos_id(ctx: QueryCtx, args: WorkosIdArgs) -> Result<Value> {
    Ok(user_by_workos_id(&ctx.db, &args.workos_user_id)
        .await?
        .map_or(Value::Null, |d| d.into_value()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OnboardingStatusArgs {
    onboarding_complete: bool,
    limit: Option<f64>,
}

/// @summary Lists users by onboarding status
///
/// @description Internal: up to `limit` (default 100) users with the given
/// `onboardingComplete`, newest first. Not callable by clients.
#[macros::function(
    internal_query,
    path = "users/queries:getUsersByOnboardingStatus",
    args = v::object([
        ("onboardingComplete", v::boolean()),
        ("limit", v::optional(v::number())),
    ]),
    returns = v::array(user_validator())
)]
async fn get_users_by_onboarding_status(
    ctx: QueryCtx,
    args: OnboardingStatusArgs,
) -> Result<Vec<Value>> {
    let limit = args.limit.unwrap_or(100.0).clamp(1.0, 1000.0) as usize;
    let docs = ctx
        .db
        .query("users")
        .with_index("by_onboarding_complete", |r| {
            r.eq("onboardingComplete", args.onboarding_complete)
        })
        .order(Order::Desc)
        .take(limit)
        .await?;
    Ok(docs.into_iter().map(|d| d.into_value()).collect())
}

/// Registers `users/queries:*`.
pub fn register(registry: &mut Registry) {
    registry.register(get_current_user_spec());
    registry.register(get_user_by_id_spec());
    registry.register(get_user_profile_spec());
    registry.register(get_onboarding_state_spec());
    registry.register(list_active_users_in_org_spec());
    registry.register(export_my_data_spec());
    registry.register(get_user_by_id_internal_spec());
    registry.register(get_user_by_workos_id_spec());
    registry.register(get_users_by_onboarding_status_spec());
}
