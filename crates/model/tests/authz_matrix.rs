//! The one authorization matrix of the people, meetings, chat,
//! auth/permissions, system-services, notes and transcripts domains (issue 4 §7): every public
//! function of the deployment × {anonymous, user of another org,
//! non-participant, observer, participant, host, org admin}, each cell
//! asserting success or the exact error code, and a check that the rows
//! cover exactly the registry's public functions (a new public function
//! without a row fails the test).
//!
//! Meeting-scoped cells run against a fresh meeting (hosted by `host`, with
//! `participant`, `observer` and a second participant whose messages and
//! membership are the targets of host actions), so cells cannot influence
//! each other. People-domain cells (users, profiles, interests, settings)
//! run in a fresh deployment each, since several of them deactivate or
//! delete accounts; their "another user" variants target the second
//! participant, a member of the callers' organization.
//!
//! The org admin is an admin of the meeting's organization who does not
//! take part in it: organization roles grant no access to meetings. The
//! other-org user is a member of a second organization. Signed-out and not
//! yet provisioned or deactivated callers of the people functions are also
//! covered in people.rs (`authorization_matrix_of_people_functions`).
#![allow(missing_docs)]

mod meetings_support;
#[path = "authz_matrix/notes.rs"]
mod notes_rows;
#[path = "authz_matrix/transcripts.rs"]
mod transcripts_rows;

use std::collections::BTreeSet;

use errors::ErrorCode;
use meetings_support::{Env, ORG_A, ORG_B, TestUser};
use model::system::flags::FLAG_ADMIN_ORGS_KEY;
use runtime::{FunctionKind, Visibility};
use serde_json::{Value as Json, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    OtherOrg,
    NonParticipant,
    Observer,
    Participant,
    Host,
    OrgAdmin,
}

const CALLERS: [Caller; 7] = [
    Caller::Anonymous,
    Caller::OtherOrg,
    Caller::NonParticipant,
    Caller::Observer,
    Caller::Participant,
    Caller::Host,
    Caller::OrgAdmin,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Denied(ErrorCode),
    /// Succeeds, and the boolean at this JSON pointer of the result is
    /// `true` (the permission queries report denial in their result).
    Grants(&'static str),
    /// Succeeds with `false` at this JSON pointer.
    Refuses(&'static str),
}

use Outcome::{Allowed, Denied, Grants, Refuses};

const UNAUTH: Outcome = Denied(ErrorCode::Unauthorized);
const FORBID: Outcome = Denied(ErrorCode::Forbidden);
const ROLE: Outcome = Denied(ErrorCode::InsufficientPermissions);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No meeting is needed.
    None,
    Scheduled,
    Active,
    /// Started, then ended by the host.
    Concluded,
    /// A fresh deployment for the cell; no meeting.
    Fresh,
    /// No meeting; the operator organizations (`system.flagAdminOrgs`)
    /// are set to this list before the cell.
    Operators(&'static str),
}

/// What a cell's arguments can refer to.
struct Fixture {
    meeting: String,
    /// The caller's user id (the second participant's for anonymous).
    caller_id: String,
    /// A message by the second participant.
    others_message: String,
    /// A message by the caller (the observer's was written before being
    /// demoted); the second participant's for callers without one.
    own_message: String,
    /// The second participant (target of host actions).
    target: String,
    /// A user who is not in the meeting.
    outsider: String,
}

struct Row {
    path: &'static str,
    kind: FunctionKind,
    /// A variant label when a function has several rows.
    variant: &'static str,
    state: State,
    args: fn(&Fixture) -> Json,
    /// In the order of [`CALLERS`].
    expect: [Outcome; 7],
}

fn row(
    path: &'static str,
    kind: FunctionKind,
    state: State,
    args: fn(&Fixture) -> Json,
    expect: [Outcome; 7],
) -> Row {
    Row {
        path,
        kind,
        variant: "",
        state,
        args,
        expect,
    }
}

fn m(f: &Fixture) -> Json {
    json!({ "meetingId": f.meeting })
}

/// Reads: any participant, observers included.
const READ: [Outcome; 7] = [UNAUTH, FORBID, FORBID, Allowed, Allowed, Allowed, FORBID];
/// Host-only management.
const HOST: [Outcome; 7] = [UNAUTH, FORBID, FORBID, ROLE, ROLE, Allowed, FORBID];
/// Writes by participants and hosts.
const WRITE: [Outcome; 7] = [UNAUTH, FORBID, FORBID, ROLE, Allowed, Allowed, FORBID];
/// Any signed-in user.
const SIGNED_IN: [Outcome; 7] = [UNAUTH, Allowed, Allowed, Allowed, Allowed, Allowed, Allowed];

fn rows() -> Vec<Row> {
    use FunctionKind::{Mutation, Query};
    let mut rows = vec![
        // meetings/lifecycle
        row(
            "meetings/lifecycle:createMeeting",
            Mutation,
            State::None,
            |_| json!({ "title": "Matrix check" }),
            SIGNED_IN,
        ),
        row(
            "meetings/lifecycle:startMeeting",
            Mutation,
            State::Scheduled,
            m,
            HOST,
        ),
        row(
            "meetings/lifecycle:endMeeting",
            Mutation,
            State::Active,
            m,
            HOST,
        ),
        row(
            "meetings/lifecycle:cancelMeeting",
            Mutation,
            State::Scheduled,
            m,
            HOST,
        ),
        row(
            "meetings/lifecycle:addParticipant",
            Mutation,
            State::Scheduled,
            |f| json!({ "meetingId": f.meeting, "userId": f.outsider, "role": "participant" }),
            HOST,
        ),
        row(
            "meetings/lifecycle:addMultipleParticipants",
            Mutation,
            State::Scheduled,
            |f| {
                json!({
                    "meetingId": f.meeting,
                    "participants": [{"userId": f.outsider, "role": "observer"}],
                })
            },
            HOST,
        ),
        row(
            "meetings/lifecycle:removeParticipant",
            Mutation,
            State::Scheduled,
            |f| json!({ "meetingId": f.meeting, "userId": f.target }),
            HOST,
        ),
        row(
            "meetings/lifecycle:updateParticipantRole",
            Mutation,
            State::Scheduled,
            |f| json!({ "meetingId": f.meeting, "userId": f.target, "newRole": "observer" }),
            HOST,
        ),
        row(
            "meetings/lifecycle:joinMeeting",
            Mutation,
            State::Active,
            m,
            READ,
        ),
        // Scheduled, so that the host is not the last host of an active
        // meeting (that is a CONFLICT, tested in meetings.rs).
        row(
            "meetings/lifecycle:leaveMeeting",
            Mutation,
            State::Scheduled,
            m,
            READ,
        ),
        row(
            "meetings/lifecycle:getMeetingConnectionInfo",
            Mutation,
            State::Active,
            m,
            READ,
        ),
        // meetings/queries
        row(
            "meetings/queries:getMeeting",
            Query,
            State::Scheduled,
            m,
            READ,
        ),
        row(
            "meetings/queries:listUserMeetings",
            Query,
            State::Scheduled,
            |_| json!({}),
            SIGNED_IN,
        ),
        row(
            "meetings/queries:listMeetingParticipants",
            Query,
            State::Scheduled,
            m,
            READ,
        ),
        // meetings/stateTracking
        row(
            "meetings/stateTracking:updateSpeakingStats",
            Mutation,
            State::Active,
            |f| json!({ "meetingId": f.meeting, "userId": f.caller_id, "speakingDurationMs": 1200 }),
            WRITE,
        ),
        Row {
            // Speaking time goes only to the speaker: nobody, hosts
            // included, may credit another user.
            variant: "another user",
            ..row(
                "meetings/stateTracking:updateSpeakingStats",
                Mutation,
                State::Active,
                |f| json!({ "meetingId": f.meeting, "userId": f.target, "speakingDurationMs": 1200 }),
                [UNAUTH, FORBID, FORBID, ROLE, FORBID, FORBID, FORBID],
            )
        },
        row(
            "meetings/stateTracking:updateCurrentTopics",
            Mutation,
            State::Active,
            |f| json!({ "meetingId": f.meeting, "topics": ["pricing"] }),
            WRITE,
        ),
        row(
            "meetings/stateTracking:recordActivity",
            Mutation,
            State::Active,
            |f| json!({ "meetingId": f.meeting, "activityType": "speaking" }),
            WRITE,
        ),
        // messaging
        row(
            "messaging/mutations:sendMessage",
            Mutation,
            State::Scheduled,
            |f| json!({ "meetingId": f.meeting, "content": "Hello from the matrix" }),
            WRITE,
        ),
        row(
            "messaging/queries:listMessages",
            Query,
            State::Scheduled,
            |f| json!({ "meetingId": f.meeting, "paginationOpts": {"numItems": 10, "cursor": null} }),
            READ,
        ),
        row(
            "messaging/queries:listThread",
            Query,
            State::Scheduled,
            |f| json!({ "messageId": f.others_message }),
            READ,
        ),
    ];
    const NOTES_WRITE: [Outcome; 7] = [
        Refuses("/granted"),
        Refuses("/granted"),
        Refuses("/granted"),
        Refuses("/granted"),
        Grants("/granted"),
        Grants("/granted"),
        Refuses("/granted"),
    ];
    rows.push(row(
        "auth/permissions:validateSubscriptionPermissions",
        Query,
        State::Scheduled,
        |f| {
            json!({
                "resourceType": "meetingNotes",
                "resourceId": f.meeting,
                "requiredPermissions": ["write"],
            })
        },
        NOTES_WRITE,
    ));
    const CHAT_READ: [Outcome; 7] = [
        Refuses("/0/valid"),
        Refuses("/0/valid"),
        Refuses("/0/valid"),
        Grants("/0/valid"),
        Grants("/0/valid"),
        Grants("/0/valid"),
        Refuses("/0/valid"),
    ];
    rows.push(row(
        "auth/permissions:refreshSubscriptionPermissions",
        Query,
        State::Scheduled,
        |f| {
            json!({ "subscriptions": [{
                "resourceType": "messages",
                "resourceId": f.meeting,
                "permissions": ["read"],
                "lastValidated": 1_768_469_400_000_u64,
            }]})
        },
        CHAT_READ,
    ));
    rows.push(Row {
        variant: "own message",
        ..row(
            "messaging/mutations:editMessage",
            Mutation,
            State::Scheduled,
            |f| json!({ "messageId": f.own_message, "content": "Edited" }),
            WRITE,
        )
    });
    rows.push(Row {
        variant: "another's message",
        ..row(
            "messaging/mutations:editMessage",
            Mutation,
            State::Scheduled,
            |f| json!({ "messageId": f.others_message, "content": "Edited" }),
            [UNAUTH, FORBID, FORBID, ROLE, FORBID, FORBID, FORBID],
        )
    });
    rows.push(Row {
        variant: "own message",
        ..row(
            "messaging/mutations:deleteMessage",
            Mutation,
            State::Scheduled,
            |f| json!({ "messageId": f.own_message }),
            WRITE,
        )
    });
    rows.push(Row {
        variant: "another's message",
        ..row(
            "messaging/mutations:deleteMessage",
            Mutation,
            State::Scheduled,
            |f| json!({ "messageId": f.others_message }),
            [UNAUTH, FORBID, FORBID, ROLE, FORBID, Allowed, FORBID],
        )
    });
    rows.extend(people_rows());
    rows.extend(system_rows());
    rows.extend(notes_rows::rows());
    rows.extend(transcripts_rows::rows());
    rows
}

/// Another user's id: the second participant, a member of the callers'
/// organization.
fn target(f: &Fixture) -> Json {
    json!({ "userId": f.target })
}

/// The caller's own id (the second participant's for anonymous).
fn me(f: &Fixture) -> Json {
    json!({ "userId": f.caller_id })
}

fn variant(variant: &'static str, r: Row) -> Row {
    Row { variant, ..r }
}

fn onboarding() -> Json {
    json!({
        "age": 36,
        "gender": "female",
        "field": "Mathematics",
        "jobTitle": "Lead Engineer",
        "company": "Analytical Engines Ltd",
        "bio": "Analytical engine programmer and mathematician.",
        "interests": [
            {"id": "ai-ml", "name": "AI / ML", "category": "academic"},
            {"id": "poetry", "name": "Poetry", "category": "personal"}
        ],
        "idempotencyKey": "matrix"
    })
}

/// Everyone, signed out included (current-user reads give `null`).
const ANYONE: [Outcome; 7] = [Allowed; 7];
/// Only the user themself or an admin of the user's organization.
const OWNER_OR_ADMIN: [Outcome; 7] = [UNAUTH, FORBID, FORBID, FORBID, FORBID, FORBID, Allowed];
/// Organization admins only.
const ORG_ADMIN: [Outcome; 7] = [UNAUTH, FORBID, FORBID, FORBID, FORBID, FORBID, Allowed];
/// Nobody signed in.
const NOBODY: [Outcome; 7] = [UNAUTH, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID];

fn fresh(
    path: &'static str,
    kind: FunctionKind,
    args: fn(&Fixture) -> Json,
    expect: [Outcome; 7],
) -> Row {
    row(path, kind, State::Fresh, args, expect)
}

/// users, profiles, interests, settings: a fresh deployment per cell.
fn people_rows() -> Vec<Row> {
    use FunctionKind::{Mutation, Query};
    vec![
        fresh("users/queries:getCurrentUser", Query, |_| json!({}), ANYONE),
        variant(
            "own",
            fresh("users/queries:getUserById", Query, me, SIGNED_IN),
        ),
        variant(
            "another user's",
            fresh("users/queries:getUserById", Query, target, SIGNED_IN),
        ),
        variant(
            "own",
            fresh("users/queries:getUserProfile", Query, me, SIGNED_IN),
        ),
        variant(
            "another user's",
            fresh("users/queries:getUserProfile", Query, target, SIGNED_IN),
        ),
        fresh(
            "users/queries:getOnboardingState",
            Query,
            |_| json!({}),
            SIGNED_IN,
        ),
        fresh(
            "users/queries:listActiveUsersInOrg",
            Query,
            |_| json!({ "paginationOpts": {"numItems": 10, "cursor": null} }),
            SIGNED_IN,
        ),
        fresh(
            "users/queries:exportMyData",
            Query,
            |_| json!({}),
            SIGNED_IN,
        ),
        fresh(
            "users/mutations:upsertUser",
            Mutation,
            |_| json!({}),
            SIGNED_IN,
        ),
        variant(
            "own",
            fresh(
                "users/mutations:updateUserProfile",
                Mutation,
                |f| json!({ "userId": f.caller_id, "bio": "Updated through the matrix." }),
                SIGNED_IN,
            ),
        ),
        variant(
            "another user's",
            fresh(
                "users/mutations:updateUserProfile",
                Mutation,
                |f| json!({ "userId": f.target, "bio": "Updated through the matrix." }),
                OWNER_OR_ADMIN,
            ),
        ),
        variant(
            "own",
            fresh(
                "users/mutations:updateUserInterests",
                Mutation,
                |f| json!({ "userId": f.caller_id, "interests": ["ai-ml"] }),
                SIGNED_IN,
            ),
        ),
        variant(
            "another user's",
            fresh(
                "users/mutations:updateUserInterests",
                Mutation,
                |f| json!({ "userId": f.target, "interests": ["ai-ml"] }),
                OWNER_OR_ADMIN,
            ),
        ),
        variant(
            "own",
            fresh("users/mutations:deactivateUser", Mutation, me, SIGNED_IN),
        ),
        variant(
            "another user's",
            fresh(
                "users/mutations:deactivateUser",
                Mutation,
                target,
                OWNER_OR_ADMIN,
            ),
        ),
        fresh(
            "users/mutations:updateLastSeen",
            Mutation,
            |_| json!({}),
            SIGNED_IN,
        ),
        fresh(
            "users/mutations:saveOnboarding",
            Mutation,
            |_| onboarding(),
            SIGNED_IN,
        ),
        fresh(
            "users/mutations:deleteMyAccount",
            Mutation,
            |_| json!({ "confirm": true }),
            SIGNED_IN,
        ),
        fresh(
            "profiles/queries:getCurrentUserProfile",
            Query,
            |_| json!({}),
            ANYONE,
        ),
        variant(
            "own",
            fresh(
                "profiles/queries:getProfileByUserIdPublic",
                Query,
                me,
                SIGNED_IN,
            ),
        ),
        variant(
            "another user's",
            fresh(
                "profiles/queries:getProfileByUserIdPublic",
                Query,
                target,
                SIGNED_IN,
            ),
        ),
        fresh(
            "profiles/mutations:updateProfile",
            Mutation,
            |_| json!({ "company": "Matrix Inc" }),
            SIGNED_IN,
        ),
        fresh(
            "profiles/mutations:createProfile",
            Mutation,
            |_| json!({ "displayName": "Matrix" }),
            SIGNED_IN,
        ),
        fresh(
            "interests/queries:listCatalog",
            Query,
            |_| json!({}),
            SIGNED_IN,
        ),
        fresh(
            "settings/queries:getCurrentUserSettings",
            Query,
            |_| json!({}),
            ANYONE,
        ),
        fresh(
            "settings/mutations:updateSettings",
            Mutation,
            |_| json!({ "emailNotifications": false }),
            SIGNED_IN,
        ),
    ]
}

/// Audit logs and feature flags.
fn system_rows() -> Vec<Row> {
    use FunctionKind::{Mutation, Query};
    vec![
        variant(
            "own org",
            row(
                "audit/logging:listAuditLogs",
                Query,
                State::None,
                |_| json!({ "paginationOpts": {"numItems": 10, "cursor": null} }),
                ORG_ADMIN,
            ),
        ),
        variant(
            "another org's",
            row(
                "audit/logging:listAuditLogs",
                Query,
                State::None,
                |_| json!({ "orgId": ORG_B, "paginationOpts": {"numItems": 10, "cursor": null} }),
                NOBODY,
            ),
        ),
        row(
            "system/featureFlags:getFlag",
            Query,
            State::None,
            |_| json!({ "key": "meetings.liveTranscription" }),
            SIGNED_IN,
        ),
        row(
            "system/featureFlags:listFlags",
            Query,
            State::None,
            |_| json!({}),
            SIGNED_IN,
        ),
        variant(
            "no operator org",
            row(
                "admin/featureFlags:setFlag",
                Mutation,
                State::Operators(""),
                |_| json!({ "key": "meetings.liveTranscription", "value": true }),
                NOBODY,
            ),
        ),
        variant(
            "callers' org is the operator",
            row(
                "admin/featureFlags:setFlag",
                Mutation,
                State::Operators(ORG_A),
                |_| json!({ "key": "meetings.liveTranscription", "value": true }),
                ORG_ADMIN,
            ),
        ),
        variant(
            "the operator list itself",
            row(
                "admin/featureFlags:setFlag",
                Mutation,
                State::Operators(ORG_A),
                |_| json!({ "key": FLAG_ADMIN_ORGS_KEY, "value": ORG_B }),
                NOBODY,
            ),
        ),
    ]
}

struct People {
    host: TestUser,
    participant: TestUser,
    observer: TestUser,
    second: TestUser,
    non_participant: TestUser,
    other_org: TestUser,
    org_admin: TestUser,
}

impl People {
    fn caller(&self, c: Caller) -> Option<&TestUser> {
        match c {
            Caller::Anonymous => None,
            Caller::OtherOrg => Some(&self.other_org),
            Caller::NonParticipant => Some(&self.non_participant),
            Caller::Observer => Some(&self.observer),
            Caller::Participant => Some(&self.participant),
            Caller::Host => Some(&self.host),
            Caller::OrgAdmin => Some(&self.org_admin),
        }
    }
}

async fn send(env: &Env, who: &TestUser, meeting: &str, content: &str) -> String {
    env.mutation(
        who,
        "messaging/mutations:sendMessage",
        json!({ "meetingId": meeting, "content": content }),
    )
    .await
    .expect("sendMessage")
    .as_str()
    .unwrap()
    .to_owned()
}

async fn fixture(env: &Env, p: &People, state: State, caller: Caller, n: usize) -> Fixture {
    let outsider = env.user(fresh_name(n), Some(ORG_A), "member").await;
    if matches!(state, State::None | State::Fresh | State::Operators(_)) {
        return Fixture {
            meeting: String::new(),
            caller_id: p
                .caller(caller)
                .map_or(p.second.id.clone(), |u| u.id.clone()),
            others_message: String::new(),
            own_message: String::new(),
            target: p.second.id.clone(),
            outsider: outsider.id,
        };
    }
    // The observer starts as a participant so that it can own a message.
    let meeting = env
        .meeting(
            &p.host,
            &[
                (&p.participant, "participant"),
                (&p.observer, "participant"),
                (&p.second, "participant"),
            ],
        )
        .await;
    let others_message = send(env, &p.second, &meeting, "A message by someone else").await;
    let own_message = match caller {
        Caller::Participant => send(env, &p.participant, &meeting, "Mine").await,
        Caller::Host => send(env, &p.host, &meeting, "Mine").await,
        Caller::Observer => send(env, &p.observer, &meeting, "Mine, before demotion").await,
        _ => others_message.clone(),
    };
    env.mutation(
        &p.host,
        "meetings/lifecycle:updateParticipantRole",
        json!({ "meetingId": meeting, "userId": p.observer.id, "newRole": "observer" }),
    )
    .await
    .expect("demote observer");
    if matches!(state, State::Active | State::Concluded) {
        env.start(&p.host, &meeting).await;
    }
    if state == State::Concluded {
        env.mutation(
            &p.host,
            "meetings/lifecycle:endMeeting",
            json!({ "meetingId": meeting }),
        )
        .await
        .expect("end the meeting");
    }
    Fixture {
        caller_id: p
            .caller(caller)
            .map_or(p.second.id.clone(), |u| u.id.clone()),
        meeting,
        others_message,
        own_message,
        target: p.second.id.clone(),
        outsider: outsider.id,
    }
}

/// Distinct names for the per-cell outsiders.
fn fresh_name(n: usize) -> &'static str {
    Box::leak(format!("outsider{n}").into_boxed_str())
}

/// A deployment with the interest catalog seeded (as at start-up) and the
/// seven callers (plus the second participant) signed in.
async fn deployment() -> (Env, People) {
    let env = Env::new().await;
    model::on_start(&env.rt).await.expect("start-up hook");
    let people = People {
        host: env.user("host", Some(ORG_A), "member").await,
        participant: env.user("participant", Some(ORG_A), "member").await,
        observer: env.user("observer", Some(ORG_A), "member").await,
        second: env.user("second", Some(ORG_A), "member").await,
        non_participant: env.user("bystander", Some(ORG_A), "member").await,
        other_org: env.user("stranger", Some(ORG_B), "member").await,
        org_admin: env.user("admin", Some(ORG_A), "admin").await,
    };
    (env, people)
}

/// The path prefixes of the people, meetings, chat, auth/permissions,
/// system-services, notes and transcripts domains.
const DOMAINS: [&str; 12] = [
    "users/",
    "profiles/",
    "interests/",
    "settings/",
    "meetings/",
    "messaging/",
    "auth/",
    "audit/",
    "system/",
    "admin/",
    "notes/",
    "transcripts/",
];

#[tokio::test]
async fn authorization_matrix() {
    let (shared_env, shared_people) = deployment().await;
    let rows = rows();

    // The matrix covers exactly the public functions of these domains.
    let covered: BTreeSet<&str> = rows.iter().map(|r| r.path).collect();
    let public: BTreeSet<&str> = shared_env
        .rt
        .registry()
        .functions()
        .filter(|f| f.visibility == Visibility::Public)
        .map(|f| f.path.as_str())
        .filter(|p| DOMAINS.iter().any(|d| p.starts_with(d)))
        .collect();
    assert_eq!(
        covered, public,
        "every public function of these domains needs matrix rows, and every row a public function"
    );

    let mut failures = Vec::new();
    let mut cells = 0;
    for row in &rows {
        let spec = shared_env.rt.registry().get(row.path).expect("registered");
        assert_eq!(spec.kind, row.kind, "{}", row.path);
        for (caller, expected) in CALLERS.iter().zip(row.expect) {
            let fresh;
            let (env, people) = if row.state == State::Fresh {
                fresh = deployment().await;
                (&fresh.0, &fresh.1)
            } else {
                (&shared_env, &shared_people)
            };
            // A new rate-limit window for every cell.
            env.clock.advance_ms(10_000);
            if let State::Operators(orgs) = row.state {
                env.internal_mutation(
                    "system/featureFlags:setFlag",
                    json!({ "key": FLAG_ADMIN_ORGS_KEY, "value": orgs }),
                )
                .await
                .expect("set the operator organizations");
            }
            let fx = fixture(env, people, row.state, *caller, cells).await;
            cells += 1;
            let result = env
                .call(people.caller(*caller), row.kind, row.path, (row.args)(&fx))
                .await;
            let got = match (&result, expected) {
                (Ok(value), Grants(pointer) | Refuses(pointer)) => {
                    match value.pointer(pointer).and_then(Json::as_bool) {
                        Some(true) => Grants(pointer),
                        Some(false) => Refuses(pointer),
                        None => Allowed,
                    }
                }
                (Ok(_), _) => Allowed,
                (Err(e), _) => Denied(e.code()),
            };
            if got != expected {
                let variant = if row.variant.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", row.variant)
                };
                failures.push(format!(
                    "{}{variant} as {caller:?}: expected {expected:?}, got {got:?} ({})",
                    row.path,
                    result.err().map(|e| e.to_string()).unwrap_or_default()
                ));
            }
        }
    }
    assert_eq!(cells, rows.len() * CALLERS.len());
    eprintln!(
        "authorization matrix: {} rows ({} functions) x {} callers = {cells} cells",
        rows.len(),
        covered.len(),
        CALLERS.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {cells} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
