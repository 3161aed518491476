//! Meetings through a real `Runtime` over SQLite with a `TestClock`:
//! the lifecycle state machine, scheduled auto-end and reminders,
//! participants, roles and presence, the last-host rule, live revocation,
//! and regressions for the original's defects (tests named `defect_<n>_…`
//! after ../shared/reference/original-backend-part1.md §8).
#![allow(missing_docs)]

mod meetings_support;

use errors::ErrorCode;
use meetings_support::{Env, ORG_A, ORG_B, T0_MS, expect_code};
use runtime::FunctionKind;
use serde_json::{Value as Json, json};

const LC: &str = "meetings/lifecycle";

fn path(f: &str) -> String {
    format!("{LC}:{f}")
}

fn events(all: &[Json], meeting: &str) -> Vec<String> {
    all.iter()
        .filter(|e| e["meetingId"] == meeting)
        .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn doc_by_id<'a>(docs: &'a [Json], id: &str) -> &'a Json {
    docs.iter()
        .find(|d| d["_id"] == id)
        .unwrap_or_else(|| panic!("no document {id}"))
}

async fn meeting_doc(env: &Env, id: &str) -> Json {
    doc_by_id(&env.docs("meetings").await, id).clone()
}

async fn state_of(env: &Env, meeting: &str) -> Json {
    env.docs("meetingState")
        .await
        .into_iter()
        .find(|d| d["meetingId"] == meeting)
        .expect("meeting state")
}

async fn participant_of(env: &Env, meeting: &str, user: &str) -> Option<Json> {
    env.docs("meetingParticipants")
        .await
        .into_iter()
        .find(|d| d["meetingId"] == meeting && d["userId"] == user)
}

#[tokio::test]
async fn create_meeting_makes_the_caller_host_of_a_scheduled_meeting() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let created = env
        .mutation(
            &ada,
            &path("createMeeting"),
            json!({
                "title": "  Q1 planning kickoff ",
                "description": "Goals and owners",
                "scheduledAt": T0_MS as f64 + 3_600_000.0,
                "duration": 2_700_000.0,
            }),
        )
        .await
        .unwrap();
    assert_eq!(created["videoProvider"], "webrtc");
    assert_eq!(created["webrtcReady"], true);
    assert_eq!(
        created["features"],
        json!({"recording": false, "transcription": true, "maxParticipants": 4})
    );
    let id = created["meetingId"].as_str().unwrap();
    let meeting = meeting_doc(&env, id).await;
    assert_eq!(meeting["title"], "Q1 planning kickoff");
    assert_eq!(meeting["state"], "scheduled");
    assert_eq!(meeting["organizerId"], ada.id.as_str());
    assert_eq!(meeting["orgId"], ORG_A);
    assert_eq!(meeting["participantCount"], 1.0);
    let host = participant_of(&env, id, &ada.id).await.unwrap();
    assert_eq!(host["role"], "host");
    assert_eq!(host["presence"], "invited");
    assert_eq!(state_of(&env, id).await["active"], false);
    assert_eq!(
        events(&env.docs("meetingEvents").await, id),
        ["meeting_created"]
    );

    // The caller sees it as host.
    let got = env
        .query(
            &ada,
            "meetings/queries:getMeeting",
            json!({ "meetingId": id }),
        )
        .await
        .unwrap();
    assert_eq!(got["userRole"], "host");
    assert_eq!(got["userPresence"], "invited");
    assert_eq!(got["activeWebRTCSessions"], 0.0);
    assert!(got["_creationTime"].is_number());
}

#[tokio::test]
async fn create_meeting_validates_its_arguments() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let create_path = path("createMeeting");
    let create = |args: Json| env.mutation(&ada, &create_path, args);
    for (args, needle) in [
        (json!({"title": "   "}), "empty"),
        (json!({"title": "x".repeat(201)}), "too long"),
        (
            json!({"title": "Retro", "scheduledAt": T0_MS as f64 - 3_600_000.0}),
            "past",
        ),
        (json!({"title": "Retro", "duration": 0}), "duration"),
        (
            json!({"title": "Retro", "maxParticipants": 0}),
            "maxParticipants",
        ),
    ] {
        let e = expect_code(create(args).await, ErrorCode::ValidationError);
        assert!(e.message().contains(needle), "{e}");
    }
    let unknown_user = values::DocumentId::new(values::table_number("users"), [9; 16]).encode();
    expect_code(
        create(json!({"title": "Retro", "participantIds": [unknown_user]})).await,
        ErrorCode::NotFound,
    );
}

#[tokio::test]
async fn defect_20_create_meeting_invites_participant_emails_within_the_org() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let grace = env.user("grace", Some(ORG_A), "member").await;
    let alan = env.user("alan", Some(ORG_A), "member").await;
    let eve = env.user("eve", Some(ORG_B), "member").await;
    let created = env
        .mutation(
            &ada,
            &path("createMeeting"),
            json!({
                "title": "Design review",
                "participantIds": [grace.id, ada.id],
                "participantEmails": ["ALAN@example.com", "eve@example.com", "nobody@example.com"],
            }),
        )
        .await
        .unwrap();
    let id = created["meetingId"].as_str().unwrap();
    let rows = env
        .query(
            &ada,
            "meetings/queries:listMeetingParticipants",
            json!({ "meetingId": id }),
        )
        .await
        .unwrap();
    let mut members: Vec<(String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["user"]["displayName"].as_str().unwrap().to_owned(),
                r["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    members.sort();
    assert_eq!(
        members,
        [
            ("ada".to_owned(), "host".to_owned()),
            ("alan".to_owned(), "participant".to_owned()),
            ("grace".to_owned(), "participant".to_owned()),
        ]
    );
    assert!(participant_of(&env, id, &eve.id).await.is_none());
    assert_eq!(meeting_doc(&env, id).await["participantCount"], 3.0);
    // Only public profile fields are exposed.
    let first = &rows[0]["user"];
    assert!(first.get("email").is_none() && first.get("workosUserId").is_none());
    let _ = alan;
}

#[tokio::test]
async fn lifecycle_goes_scheduled_active_concluded_with_no_way_back() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let grace = env.user("grace", Some(ORG_A), "member").await;
    let id = env.meeting(&ada, &[(&grace, "participant")]).await;
    let m = json!({ "meetingId": id });

    // Only an active meeting can be ended or joined.
    expect_code(
        env.mutation(&ada, &path("endMeeting"), m.clone()).await,
        ErrorCode::Conflict,
    );
    expect_code(
        env.mutation(&grace, &path("joinMeeting"), m.clone()).await,
        ErrorCode::MeetingNotActive,
    );

    let started = env
        .mutation(&ada, &path("startMeeting"), m.clone())
        .await
        .unwrap();
    assert_eq!(started["success"], true);
    assert_eq!(started["videoProvider"], "webrtc");
    assert_eq!(
        started["roomInfo"]["roomId"],
        format!("webrtc_{id}").as_str()
    );
    assert_eq!(
        started["roomInfo"]["iceServers"].as_array().unwrap().len(),
        2
    );
    assert_eq!(meeting_doc(&env, &id).await["state"], "active");
    assert_eq!(state_of(&env, &id).await["active"], true);
    let e = expect_code(
        env.mutation(&ada, &path("startMeeting"), m.clone()).await,
        ErrorCode::Conflict,
    );
    assert!(e.message().contains("already active"));
    expect_code(
        env.mutation(&ada, &path("cancelMeeting"), m.clone()).await,
        ErrorCode::Conflict,
    );

    env.mutation(&grace, &path("joinMeeting"), m.clone())
        .await
        .unwrap();
    assert_eq!(
        participant_of(&env, &id, &grace.id).await.unwrap()["presence"],
        "joined"
    );

    env.clock.advance_ms(90_000);
    let ended = env
        .mutation(&ada, &path("endMeeting"), m.clone())
        .await
        .unwrap();
    assert_eq!(ended, json!({"success": true, "duration": 90_000}));
    assert_eq!(meeting_doc(&env, &id).await["state"], "concluded");
    let state = state_of(&env, &id).await;
    assert_eq!(state["active"], false);
    assert!(state["endedAt"].is_number());
    // Everyone still joined is marked as left.
    let grace_row = participant_of(&env, &id, &grace.id).await.unwrap();
    assert_eq!(grace_row["presence"], "left");

    // Concluded is final.
    for f in ["startMeeting", "endMeeting", "cancelMeeting"] {
        expect_code(
            env.mutation(&ada, &path(f), m.clone()).await,
            ErrorCode::Conflict,
        );
    }
    let carol = env.user("carol", Some(ORG_A), "member").await;
    expect_code(
        env.mutation(
            &ada,
            &path("addParticipant"),
            json!({ "meetingId": id, "userId": carol.id, "role": "participant" }),
        )
        .await,
        ErrorCode::Conflict,
    );
    expect_code(
        env.mutation(&grace, &path("joinMeeting"), m.clone()).await,
        ErrorCode::MeetingNotActive,
    );
    assert_eq!(
        events(&env.docs("meetingEvents").await, &id),
        [
            "meeting_created",
            "participant_added",
            "meeting_started",
            "participant_joined",
            "meeting_ended"
        ]
    );
}

#[tokio::test]
async fn cancel_only_from_scheduled_is_final_and_audited() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let id = env.meeting(&ada, &[]).await;
    let m = json!({ "meetingId": id });
    env.mutation(&ada, &path("cancelMeeting"), m.clone())
        .await
        .unwrap();
    assert_eq!(meeting_doc(&env, &id).await["state"], "cancelled");
    for f in ["startMeeting", "endMeeting", "cancelMeeting"] {
        expect_code(
            env.mutation(&ada, &path(f), m.clone()).await,
            ErrorCode::Conflict,
        );
    }
    let audit = env.docs("auditLogs").await;
    assert!(audit.iter().any(|a| a["action"] == "meeting.cancelled"
        && a["resourceId"] == id.as_str()
        && a["actorUserId"] == ada.id.as_str()
        && a["orgId"] == ORG_A));
    // Participants can still read it.
    let got = env
        .query(&ada, "meetings/queries:getMeeting", m)
        .await
        .unwrap();
    assert_eq!(got["state"], "cancelled");
}

#[tokio::test]
async fn defect_21_meetings_end_on_their_own_after_their_duration() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let grace = env.user("grace", Some(ORG_A), "member").await;
    let created = env
        .mutation(
            &ada,
            &path("createMeeting"),
            json!({ "title": "Standup", "duration": 60_000 }),
        )
        .await
        .unwrap();
    let id = created["meetingId"].as_str().unwrap().to_owned();
    env.mutation(
        &ada,
        &path("addParticipant"),
        json!({ "meetingId": id, "userId": grace.id, "role": "participant" }),
    )
    .await
    .unwrap();
    env.start(&ada, &id).await;
    env.mutation(&grace, &path("joinMeeting"), json!({ "meetingId": id }))
        .await
        .unwrap();

    env.clock.advance_ms(59_000);
    env.rt.scheduler_tick(true).await.unwrap();
    assert_eq!(meeting_doc(&env, &id).await["state"], "active");

    env.clock.advance_ms(2_000);
    let report = env.rt.scheduler_tick(true).await.unwrap();
    assert_eq!(report.jobs_started, 1);
    assert_eq!(meeting_doc(&env, &id).await["state"], "concluded");
    let state = state_of(&env, &id).await;
    assert_eq!(state["active"], false);
    assert_eq!(
        participant_of(&env, &id, &grace.id).await.unwrap()["presence"],
        "left"
    );
    let evs = events(&env.docs("meetingEvents").await, &id);
    assert_eq!(evs.last().map(String::as_str), Some("meeting_auto_ended"));

    // Idempotent: the same job again changes nothing.
    let again = env
        .internal_mutation(
            &path("autoEndMeeting"),
            json!({ "meetingId": id, "startedAt": state["startedAt"] }),
        )
        .await
        .unwrap();
    assert_eq!(again, json!({ "ended": false }));
    assert_eq!(
        events(&env.docs("meetingEvents").await, &id)
            .iter()
            .filter(|e| *e == "meeting_auto_ended")
            .count(),
        1
    );
}

#[tokio::test]
async fn auto_end_after_a_manual_end_does_nothing() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let id = env.meeting(&ada, &[]).await;
    env.start(&ada, &id).await;
    env.mutation(&ada, &path("endMeeting"), json!({ "meetingId": id }))
        .await
        .unwrap();
    env.clock.advance_ms(31 * 60_000);
    // The (no-op) auto-end job and the transcript aggregation endMeeting
    // scheduled.
    assert_eq!(env.rt.scheduler_tick(true).await.unwrap().jobs_started, 2);
    let evs = events(&env.docs("meetingEvents").await, &id);
    assert!(!evs.contains(&"meeting_auto_ended".to_owned()), "{evs:?}");
    assert_eq!(evs.last().map(String::as_str), Some("meeting_ended"));
}

#[tokio::test]
async fn a_reminder_is_recorded_ten_minutes_before_a_scheduled_meeting() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let at = T0_MS as f64 + 3_600_000.0;
    let id = env
        .mutation(
            &ada,
            &path("createMeeting"),
            json!({ "title": "Board prep", "scheduledAt": at }),
        )
        .await
        .unwrap()["meetingId"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancelled = env
        .mutation(
            &ada,
            &path("createMeeting"),
            json!({ "title": "Dropped", "scheduledAt": at }),
        )
        .await
        .unwrap()["meetingId"]
        .as_str()
        .unwrap()
        .to_owned();
    env.mutation(
        &ada,
        &path("cancelMeeting"),
        json!({ "meetingId": cancelled }),
    )
    .await
    .unwrap();

    env.clock.advance_ms(49 * 60_000);
    assert_eq!(env.rt.scheduler_tick(true).await.unwrap().jobs_started, 0);
    env.clock.advance_ms(60_000);
    assert_eq!(env.rt.scheduler_tick(true).await.unwrap().jobs_started, 2);
    let all = env.docs("meetingEvents").await;
    let reminder = all
        .iter()
        .find(|e| e["meetingId"] == id.as_str() && e["event"] == "meeting_reminder")
        .expect("reminder");
    assert_eq!(reminder["metadata"]["scheduledAt"], at);
    assert_eq!(reminder["metadata"]["recipients"], 1.0);
    assert!(!events(&all, &cancelled).contains(&"meeting_reminder".to_owned()));
    // Idempotent.
    let again = env
        .internal_mutation(
            &path("sendMeetingReminder"),
            json!({ "meetingId": id, "scheduledAt": at }),
        )
        .await
        .unwrap();
    assert_eq!(again, json!({ "sent": false }));
}

#[tokio::test]
async fn presence_join_leave_and_rejoin() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let obs = env.user("olga", Some(ORG_A), "member").await;
    let id = env.meeting(&ada, &[(&obs, "observer")]).await;
    env.start(&ada, &id).await;
    let m = json!({ "meetingId": id });
    let joined = env
        .mutation(&obs, &path("joinMeeting"), m.clone())
        .await
        .unwrap();
    assert_eq!(joined, json!({"success": true, "webrtcReady": true}));
    let row = participant_of(&env, &id, &obs.id).await.unwrap();
    assert_eq!(row["presence"], "joined");
    assert!(row["joinedAt"].is_number());
    env.mutation(&obs, &path("leaveMeeting"), m.clone())
        .await
        .unwrap();
    let row = participant_of(&env, &id, &obs.id).await.unwrap();
    assert_eq!(row["presence"], "left");
    assert!(row["leftAt"].is_number());
    env.mutation(&obs, &path("joinMeeting"), m.clone())
        .await
        .unwrap();
    assert_eq!(
        participant_of(&env, &id, &obs.id).await.unwrap()["presence"],
        "joined"
    );
    let listed = env
        .query(&obs, "meetings/queries:getMeeting", m)
        .await
        .unwrap();
    assert_eq!(listed["userPresence"], "joined");
    assert_eq!(listed["userRole"], "observer");
}

#[tokio::test]
async fn the_last_host_cannot_leave_be_removed_or_be_demoted() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let grace = env.user("grace", Some(ORG_A), "member").await;
    let id = env.meeting(&ada, &[(&grace, "participant")]).await;
    env.start(&ada, &id).await;
    let m = json!({ "meetingId": id });
    let me = json!({ "meetingId": id, "userId": ada.id });

    let e = expect_code(
        env.mutation(&ada, &path("leaveMeeting"), m.clone()).await,
        ErrorCode::Conflict,
    );
    assert!(e.message().contains("only host"), "{e}");
    expect_code(
        env.mutation(&ada, &path("removeParticipant"), me.clone())
            .await,
        ErrorCode::Conflict,
    );
    let mut demote = me.clone();
    demote["newRole"] = json!("participant");
    expect_code(
        env.mutation(&ada, &path("updateParticipantRole"), demote.clone())
            .await,
        ErrorCode::Conflict,
    );

    // With a second host the organizer may step down, and leave.
    env.mutation(
        &ada,
        &path("updateParticipantRole"),
        json!({ "meetingId": id, "userId": grace.id, "newRole": "host" }),
    )
    .await
    .unwrap();
    env.mutation(&ada, &path("leaveMeeting"), m.clone())
        .await
        .unwrap();
    env.mutation(&ada, &path("updateParticipantRole"), demote)
        .await
        .unwrap();
    // Now grace is the last host.
    expect_code(
        env.mutation(&grace, &path("leaveMeeting"), m.clone()).await,
        ErrorCode::Conflict,
    );
    expect_code(
        env.mutation(
            &grace,
            &path("removeParticipant"),
            json!({ "meetingId": id, "userId": grace.id }),
        )
        .await,
        ErrorCode::Conflict,
    );
    // A scheduled or ended meeting can be left by its only host.
    env.mutation(&grace, &path("endMeeting"), m.clone())
        .await
        .unwrap();
    env.mutation(&grace, &path("leaveMeeting"), m)
        .await
        .unwrap();
}

#[tokio::test]
async fn defect_26_only_the_organizer_removes_or_demotes_another_host() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let grace = env.user("grace", Some(ORG_A), "member").await;
    let alan = env.user("alan", Some(ORG_A), "member").await;
    let id = env
        .meeting(&ada, &[(&grace, "host"), (&alan, "host")])
        .await;
    // A non-organizer host cannot take the host role from another host…
    for target in [&ada, &alan] {
        expect_code(
            env.mutation(
                &grace,
                &path("updateParticipantRole"),
                json!({ "meetingId": id, "userId": target.id, "newRole": "participant" }),
            )
            .await,
            ErrorCode::Forbidden,
        );
        expect_code(
            env.mutation(
                &grace,
                &path("removeParticipant"),
                json!({ "meetingId": id, "userId": target.id }),
            )
            .await,
            ErrorCode::Forbidden,
        );
    }
    // …but can step down, and the organizer can demote and remove hosts.
    env.mutation(
        &grace,
        &path("updateParticipantRole"),
        json!({ "meetingId": id, "userId": grace.id, "newRole": "observer" }),
    )
    .await
    .unwrap();
    env.mutation(
        &ada,
        &path("updateParticipantRole"),
        json!({ "meetingId": id, "userId": alan.id, "newRole": "participant" }),
    )
    .await
    .unwrap();
    env.mutation(
        &ada,
        &path("removeParticipant"),
        json!({ "meetingId": id, "userId": alan.id }),
    )
    .await
    .unwrap();
    assert_eq!(
        participant_of(&env, &id, &grace.id).await.unwrap()["role"],
        "observer"
    );
    assert!(participant_of(&env, &id, &alan.id).await.is_none());
}

#[tokio::test]
async fn defect_26_co_host_is_refused_and_observer_can_be_set() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let grace = env.user("grace", Some(ORG_A), "member").await;
    let id = env.meeting(&ada, &[]).await;
    let e = expect_code(
        env.mutation(
            &ada,
            &path("addParticipant"),
            json!({ "meetingId": id, "userId": grace.id, "role": "co-host" }),
        )
        .await,
        ErrorCode::ValidationError,
    );
    assert!(e.message().contains("co-host"), "{e}");
    assert!(participant_of(&env, &id, &grace.id).await.is_none());
    env.mutation(
        &ada,
        &path("addParticipant"),
        json!({ "meetingId": id, "userId": grace.id, "role": "participant" }),
    )
    .await
    .unwrap();
    env.mutation(
        &ada,
        &path("updateParticipantRole"),
        json!({ "meetingId": id, "userId": grace.id, "newRole": "observer" }),
    )
    .await
    .unwrap();
    assert_eq!(
        participant_of(&env, &id, &grace.id).await.unwrap()["role"],
        "observer"
    );
}

#[tokio::test]
async fn add_multiple_participants_reports_what_it_skipped() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let grace = env.user("grace", Some(ORG_A), "member").await;
    let alan = env.user("alan", Some(ORG_A), "member").await;
    let gone = env.user("gone", Some(ORG_A), "member").await;
    env.internal_mutation("test/users:deactivate", json!({ "id": gone.id }))
        .await
        .unwrap();
    let id = env.meeting(&ada, &[]).await;
    let out = env
        .mutation(
            &ada,
            &path("addMultipleParticipants"),
            json!({
                "meetingId": id,
                "participants": [
                    {"userId": grace.id, "role": "participant"},
                    {"userId": ada.id, "role": "observer"},
                    {"userId": grace.id, "role": "observer"},
                    {"userId": gone.id, "role": "participant"},
                    {"userId": alan.id, "role": "co-host"},
                ],
            }),
        )
        .await
        .unwrap();
    assert_eq!(out["added"].as_array().unwrap().len(), 1);
    let reasons: Vec<&str> = out["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons[0], "Already a participant");
    assert_eq!(reasons[1], "Duplicate in request");
    assert_eq!(reasons[2], "User not found");
    assert!(reasons[3].contains("co-host"));
    assert_eq!(meeting_doc(&env, &id).await["participantCount"], 2.0);
}

#[tokio::test]
async fn defect_25_participant_not_found_messages_are_readable() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let grace = env.user("grace", Some(ORG_A), "member").await;
    let id = env.meeting(&ada, &[]).await;
    let e = expect_code(
        env.mutation(
            &ada,
            &path("removeParticipant"),
            json!({ "meetingId": id, "userId": grace.id }),
        )
        .await,
        ErrorCode::NotFound,
    );
    assert_eq!(
        e.message(),
        format!("User {} is not a participant of meeting {id}", grace.id)
    );
}

#[tokio::test]
async fn defect_34_a_removed_participants_live_queries_turn_forbidden() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let grace = env.user("grace", Some(ORG_A), "member").await;
    let id = env.meeting(&ada, &[(&grace, "participant")]).await;
    let m = json!({ "meetingId": id });
    let chat = json!({ "meetingId": id, "paginationOpts": {"numItems": 10, "cursor": null} });

    let mut subs = Vec::new();
    for (path, args) in [
        ("meetings/queries:getMeeting", m.clone()),
        ("meetings/queries:listMeetingParticipants", m.clone()),
        ("messaging/queries:listMessages", chat.clone()),
    ] {
        let (out, sub) = env.subscribe(&grace, path, args.clone()).await;
        assert!(out.result.is_ok(), "{path}: {:?}", out.result);
        subs.push((path, args, sub));
    }
    // An unrelated write elsewhere does not disturb them.
    let other = env.meeting(&ada, &[]).await;
    assert!(!other.is_empty());
    for (path, _, sub) in &subs {
        assert_eq!(sub.invalidated_at(), None, "{path}");
    }

    env.mutation(
        &ada,
        &path("removeParticipant"),
        json!({ "meetingId": id, "userId": grace.id }),
    )
    .await
    .unwrap();
    for (path, args, sub) in subs {
        assert!(sub.invalidated_at().is_some(), "{path} was not invalidated");
        let (rerun, _) = env.subscribe(&grace, path, args).await;
        let e = expect_code(rerun.result, ErrorCode::Forbidden);
        assert!(e.message().contains("Not a meeting participant"), "{e}");
    }
    let audit = env.docs("auditLogs").await;
    let entry = audit
        .iter()
        .find(|a| a["action"] == "participant.removed")
        .expect("audit entry");
    assert_eq!(entry["actorUserId"], ada.id.as_str());
    assert_eq!(entry["metadata"]["targetUserId"], grace.id.as_str());
    assert_eq!(entry["resourceType"], "meeting");
}

#[tokio::test]
async fn defect_36_role_changes_are_audited_with_the_acting_host() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let grace = env.user("grace", Some(ORG_B), "member").await;
    let id = env.meeting(&ada, &[(&grace, "participant")]).await;
    let (_, sub) = env
        .subscribe(
            &grace,
            "meetings/queries:getMeeting",
            json!({ "meetingId": id }),
        )
        .await;
    env.mutation(
        &ada,
        &path("updateParticipantRole"),
        json!({ "meetingId": id, "userId": grace.id, "newRole": "host" }),
    )
    .await
    .unwrap();
    assert!(sub.invalidated_at().is_some());
    let got = env
        .query(
            &grace,
            "meetings/queries:getMeeting",
            json!({ "meetingId": id }),
        )
        .await
        .unwrap();
    assert_eq!(got["userRole"], "host");
    // The organizer's organization id is not shown to another org's member.
    assert!(got.get("orgId").is_none(), "{got}");
    let audit = env.docs("auditLogs").await;
    let entry = audit
        .iter()
        .find(|a| a["action"] == "participant.role_changed")
        .expect("audit entry");
    assert_eq!(entry["actorUserId"], ada.id.as_str());
    assert_eq!(entry["orgId"], ORG_A, "the meeting's organization");
    assert_eq!(entry["metadata"]["targetUserId"], grace.id.as_str());
    assert_eq!(entry["metadata"]["oldRole"], "participant");
    assert_eq!(entry["metadata"]["newRole"], "host");
    // Setting the same role again is a no-op (no second entry).
    env.mutation(
        &ada,
        &path("updateParticipantRole"),
        json!({ "meetingId": id, "userId": grace.id, "newRole": "host" }),
    )
    .await
    .unwrap();
    assert_eq!(
        env.docs("auditLogs")
            .await
            .iter()
            .filter(|a| a["action"] == "participant.role_changed")
            .count(),
        1
    );
}

#[tokio::test]
async fn defect_4_create_meeting_needs_a_token_and_never_acts_for_someone_else() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let grace = env.user("grace", Some(ORG_A), "member").await;
    expect_code(
        env.call(
            None,
            FunctionKind::Mutation,
            &path("createMeeting"),
            json!({ "title": "Spoofed", "organizerId": ada.id }),
        )
        .await,
        ErrorCode::Unauthorized,
    );
    expect_code(
        env.mutation(
            &grace,
            &path("createMeeting"),
            json!({ "title": "Spoofed", "organizerId": ada.id }),
        )
        .await,
        ErrorCode::Forbidden,
    );
    assert!(env.docs("meetings").await.is_empty());
    // Naming oneself is fine.
    env.mutation(
        &ada,
        &path("createMeeting"),
        json!({ "title": "Mine", "organizerId": ada.id }),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn defect_2_the_paid_provider_comes_from_token_claims_not_arguments() {
    let env = Env::new().await;
    let admin = env.user("ada", Some(ORG_A), "admin").await;
    let member = env.user("grace", Some(ORG_A), "member").await;
    let big = json!({ "title": "All hands", "maxParticipants": 50, "recordingEnabled": true });
    let out = env
        .mutation(&member, &path("createMeeting"), big.clone())
        .await
        .unwrap();
    assert_eq!(out["videoProvider"], "webrtc");
    assert_eq!(out["features"]["recording"], false);
    assert_eq!(out["features"]["maxParticipants"], 4.0);
    let out = env
        .mutation(&admin, &path("createMeeting"), big)
        .await
        .unwrap();
    assert_eq!(out["videoProvider"], "getstream");
    assert_eq!(out["webrtcReady"], false);
    assert_eq!(
        out["features"],
        json!({"recording": true, "transcription": true, "maxParticipants": 50})
    );
}

#[tokio::test]
async fn defect_20_transcription_flag_and_default_size_are_respected() {
    let env = Env::new().await;
    let admin = env.user("ada", Some(ORG_A), "admin").await;
    // An admin's default meeting is not forced onto GetStream.
    let out = env
        .mutation(
            &admin,
            &path("createMeeting"),
            json!({ "title": "1:1", "transcriptionEnabled": false }),
        )
        .await
        .unwrap();
    assert_eq!(out["videoProvider"], "webrtc");
    assert_eq!(out["features"]["transcription"], false);
}

#[tokio::test]
async fn defect_22_get_meeting_connection_info_is_a_read_only_mutation() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let obs = env.user("olga", Some(ORG_A), "member").await;
    let id = env.meeting(&ada, &[(&obs, "observer")]).await;
    let m = json!({ "meetingId": id });
    expect_code(
        env.mutation(&obs, &path("getMeetingConnectionInfo"), m.clone())
            .await,
        ErrorCode::MeetingNotActive,
    );
    env.start(&ada, &id).await;
    let tables = [
        "meetings",
        "meetingParticipants",
        "meetingState",
        "meetingEvents",
        "auditLogs",
    ];
    let mut before = Vec::new();
    for t in tables {
        before.push(env.docs(t).await);
    }
    let info = env
        .mutation(&obs, &path("getMeetingConnectionInfo"), m.clone())
        .await
        .unwrap();
    assert_eq!(
        info,
        json!({
            "success": true,
            "videoProvider": "webrtc",
            "connectionInfo": {
                "roomId": format!("webrtc_{id}"),
                "iceServers": [
                    {"urls": "stun:stun.l.google.com:19302"},
                    {"urls": "stun:stun1.l.google.com:19302"}
                ]
            },
            "features": {"recording": false, "transcription": true, "maxParticipants": 4}
        })
    );
    for (t, b) in tables.iter().zip(before) {
        assert_eq!(env.docs(t).await, b, "{t} changed");
    }
    // It stays a mutation: the web app calls it with `convex.mutation`.
    expect_code(
        env.call(
            Some(&obs),
            FunctionKind::Query,
            &path("getMeetingConnectionInfo"),
            m,
        )
        .await,
        ErrorCode::BadRequest,
    );
}

#[tokio::test]
async fn defect_8_participants_only_report_their_own_speaking_time() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let grace = env.user("grace", Some(ORG_A), "member").await;
    let alan = env.user("alan", Some(ORG_A), "member").await;
    let outsider = env.user("eve", Some(ORG_A), "member").await;
    let id = env
        .meeting(&ada, &[(&grace, "participant"), (&alan, "participant")])
        .await;
    let report =
        |user: &str, ms: f64| json!({ "meetingId": id, "userId": user, "speakingDurationMs": ms });
    const SPEAK: &str = "meetings/stateTracking:updateSpeakingStats";
    expect_code(
        env.mutation(&grace, SPEAK, report(&grace.id, 1000.0)).await,
        ErrorCode::MeetingNotActive,
    );
    env.start(&ada, &id).await;
    env.mutation(&grace, SPEAK, report(&grace.id, 1500.0))
        .await
        .unwrap();
    // The original let any participant credit anyone.
    expect_code(
        env.mutation(&grace, SPEAK, report(&alan.id, 60_000.0))
            .await,
        ErrorCode::Forbidden,
    );
    // Speaking time goes only to the speaker: hosts cannot credit others
    // either (participants or outsiders).
    env.mutation(&alan, SPEAK, report(&alan.id, 500.0))
        .await
        .unwrap();
    for target in [&alan.id, &outsider.id] {
        expect_code(
            env.mutation(&ada, SPEAK, report(target, 500.0)).await,
            ErrorCode::Forbidden,
        );
    }
    expect_code(
        env.mutation(&grace, SPEAK, report(&grace.id, -1.0)).await,
        ErrorCode::ValidationError,
    );
    let state = state_of(&env, &id).await;
    assert_eq!(state["speakingStats"]["totalMs"], 2000.0);
    assert_eq!(state["speakingStats"]["byUserMs"][&grace.id], 1500.0);
    assert_eq!(state["speakingStats"]["byUserMs"][&alan.id], 500.0);
    assert_eq!(state["lullState"]["detected"], false);
    let ratios = env
        .internal_query(
            "meetings/stateTracking:getSpeakingTimeRatios",
            json!({ "meetingId": id }),
        )
        .await
        .unwrap();
    assert_eq!(ratios[&grace.id], 0.75);
    assert_eq!(ratios[&alan.id], 0.25);
}

#[tokio::test]
async fn topics_activity_and_lull_detection() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let grace = env.user("grace", Some(ORG_A), "member").await;
    let id = env.meeting(&ada, &[(&grace, "participant")]).await;
    env.start(&ada, &id).await;
    env.mutation(
        &grace,
        "meetings/stateTracking:updateCurrentTopics",
        json!({ "meetingId": id, "topics": [" hiring ", "roadmap", "hiring", ""] }),
    )
    .await
    .unwrap();
    assert_eq!(
        state_of(&env, &id).await["topics"],
        json!(["hiring", "roadmap"])
    );
    expect_code(
        env.mutation(
            &grace,
            "meetings/stateTracking:updateCurrentTopics",
            json!({ "meetingId": id, "topics": vec!["t"; 21] }),
        )
        .await,
        ErrorCode::ValidationError,
    );
    env.mutation(
        &grace,
        "meetings/stateTracking:recordActivity",
        json!({ "meetingId": id, "activityType": "reaction" }),
    )
    .await
    .unwrap();
    expect_code(
        env.mutation(
            &grace,
            "meetings/stateTracking:recordActivity",
            json!({ "meetingId": id, "activityType": "reaction", "userId": ada.id }),
        )
        .await,
        ErrorCode::Forbidden,
    );
    let now = T0_MS as f64;
    let detect = |t: f64| {
        env.internal_mutation(
            "meetings/stateTracking:detectLull",
            json!({ "meetingId": id, "currentTime": t }),
        )
    };
    let quiet = detect(now + 10_000.0).await.unwrap();
    assert_eq!(quiet["lullDetected"], false);
    let lull = detect(now + 45_000.0).await.unwrap();
    assert_eq!(lull["lullDetected"], true);
    assert_eq!(lull["shouldGeneratePrompts"], true);
    let still = detect(now + 50_000.0).await.unwrap();
    assert_eq!(still["shouldGeneratePrompts"], false, "only newly detected");
    let state = env
        .internal_query(
            "meetings/queries:getMeetingState",
            json!({ "meetingId": id }),
        )
        .await
        .unwrap();
    assert_eq!(state["participantCount"], 2.0);
    assert_eq!(state["lullState"]["detected"], true);
}

#[tokio::test]
async fn defect_12_list_user_meetings_returns_whole_documents() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let grace = env.user("grace", Some(ORG_A), "member").await;
    let first = env.meeting(&ada, &[(&grace, "observer")]).await;
    env.clock.advance_ms(1_000);
    let second = env.meeting(&grace, &[(&ada, "participant")]).await;
    env.clock.advance_ms(1_000);
    let third = env.meeting(&ada, &[]).await;
    env.start(&ada, &third).await;
    env.internal_mutation(
        &path("updateStreamRoomId"),
        json!({ "meetingId": first, "streamRoomId": "call_demo" }),
    )
    .await
    .unwrap();

    let all = env
        .query(&ada, "meetings/queries:listUserMeetings", json!({}))
        .await
        .unwrap();
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [third.as_str(), second.as_str(), first.as_str()]);
    let m = &all[2];
    for field in ["_creationTime", "webrtcEnabled", "streamRoomId", "duration"] {
        assert!(m.get(field).is_some(), "missing {field}: {m}");
    }
    assert_eq!(m["userRole"], "host");
    assert_eq!(all[1]["userRole"], "participant");

    let active = env
        .query(
            &ada,
            "meetings/queries:listUserMeetings",
            json!({ "state": "active", "limit": 5 }),
        )
        .await
        .unwrap();
    assert_eq!(active.as_array().unwrap().len(), 1);
    assert_eq!(active[0]["_id"], third.as_str());
    let limited = env
        .query(
            &ada,
            "meetings/queries:listUserMeetings",
            json!({ "limit": 1 }),
        )
        .await
        .unwrap();
    assert_eq!(limited.as_array().unwrap().len(), 1);
    expect_code(
        env.query(
            &ada,
            "meetings/queries:listUserMeetings",
            json!({ "limit": 0 }),
        )
        .await,
        ErrorCode::ValidationError,
    );
    let graces = env
        .query(&grace, "meetings/queries:listUserMeetings", json!({}))
        .await
        .unwrap();
    assert_eq!(graces.as_array().unwrap().len(), 2);
    assert_eq!(graces[1]["userRole"], "observer");
}

#[tokio::test]
async fn get_meeting_of_a_missing_meeting_is_null_and_unknown_meetings_are_not_found() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let missing = values::DocumentId::new(values::table_number("meetings"), [7; 16]).encode();
    let got = env
        .query(
            &ada,
            "meetings/queries:getMeeting",
            json!({ "meetingId": missing }),
        )
        .await
        .unwrap();
    assert_eq!(got, Json::Null);
    expect_code(
        env.mutation(&ada, &path("startMeeting"), json!({ "meetingId": missing }))
            .await,
        ErrorCode::NotFound,
    );
    // A user id where a meeting id belongs is refused by the validator.
    expect_code(
        env.query(
            &ada,
            "meetings/queries:getMeeting",
            json!({ "meetingId": ada.id }),
        )
        .await,
        ErrorCode::ValidationError,
    );
}

#[tokio::test]
async fn defect_10_a_deactivated_user_is_refused() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let grace = env.user("grace", Some(ORG_A), "member").await;
    let id = env.meeting(&ada, &[(&grace, "participant")]).await;
    let (_, sub) = env
        .subscribe(
            &grace,
            "meetings/queries:getMeeting",
            json!({ "meetingId": id }),
        )
        .await;
    env.internal_mutation("test/users:deactivate", json!({ "id": grace.id }))
        .await
        .unwrap();
    assert!(sub.invalidated_at().is_some());
    expect_code(
        env.query(
            &grace,
            "meetings/queries:getMeeting",
            json!({ "meetingId": id }),
        )
        .await,
        ErrorCode::Forbidden,
    );
    expect_code(
        env.mutation(&grace, &path("createMeeting"), json!({ "title": "x" }))
            .await,
        ErrorCode::Forbidden,
    );
}

async fn send(
    env: &Env,
    who: &meetings_support::TestUser,
    meeting: &str,
    content: &str,
    parent: Option<&str>,
) -> String {
    let mut args = json!({ "meetingId": meeting, "content": content });
    if let Some(p) = parent {
        args["parentId"] = json!(p);
    }
    env.mutation(who, "messaging/mutations:sendMessage", args)
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn account_deletion_leaves_upcoming_meetings_and_erases_chat() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let grace = env.user("grace", Some(ORG_A), "member").await;
    let upcoming = env.meeting(&ada, &[(&grace, "participant")]).await;
    let running = env.meeting(&ada, &[(&grace, "participant")]).await;
    env.start(&ada, &running).await;
    let graces = env.meeting(&grace, &[(&ada, "participant")]).await;
    let past = env.meeting(&ada, &[(&grace, "participant")]).await;
    env.start(&ada, &past).await;
    env.mutation(&ada, &path("endMeeting"), json!({ "meetingId": past }))
        .await
        .unwrap();

    let answered = send(&env, &ada, &upcoming, "Agenda attached", None).await;
    send(&env, &grace, &upcoming, "Thanks!", Some(&answered)).await;
    let alone = send(&env, &ada, &upcoming, "Typo", None).await;
    let question = send(&env, &grace, &graces, "Who takes notes?", None).await;
    send(&env, &ada, &graces, "I will", Some(&question)).await;

    let export = env
        .query(&ada, "users/queries:exportMyData", json!({}))
        .await
        .unwrap();
    let sections = &export["sections"];
    assert_eq!(sections["meetings"].as_array().unwrap().len(), 3);
    assert_eq!(sections["meetingParticipants"].as_array().unwrap().len(), 4);
    assert_eq!(sections["messages"].as_array().unwrap().len(), 3);
    assert!(!sections["meetingEvents"].as_array().unwrap().is_empty());

    env.mutation(
        &ada,
        "users/mutations:deleteMyAccount",
        json!({ "confirm": true }),
    )
    .await
    .unwrap();

    let meetings = env.docs("meetings").await;
    assert_eq!(doc_by_id(&meetings, &upcoming)["state"], "cancelled");
    assert_eq!(doc_by_id(&meetings, &running)["state"], "concluded");
    assert_eq!(doc_by_id(&meetings, &graces)["state"], "scheduled");
    assert_eq!(doc_by_id(&meetings, &graces)["participantCount"], 1.0);
    assert!(participant_of(&env, &graces, &ada.id).await.is_none());
    assert!(participant_of(&env, &upcoming, &ada.id).await.is_none());
    assert!(participant_of(&env, &past, &ada.id).await.is_some());

    let messages = env.docs("messages").await;
    let tomb = doc_by_id(&messages, &answered);
    assert_eq!(tomb["content"], "");
    assert!(tomb["deletedAt"].is_number());
    assert!(messages.iter().all(|m| m["_id"] != alone.as_str()));
    assert_eq!(doc_by_id(&messages, &question)["replyCount"], 0.0);
    assert_eq!(
        messages
            .iter()
            .filter(|m| m["userId"] == ada.id.as_str() && m["content"] != "")
            .count(),
        0
    );
    // Grace still reads her meeting and the surviving thread.
    let thread = env
        .query(
            &grace,
            "messaging/queries:listThread",
            json!({ "messageId": answered }),
        )
        .await
        .unwrap();
    assert_eq!(thread["replies"][0]["content"], "Thanks!");
}

const VALIDATE: &str = "auth/permissions:validateSubscriptionPermissions";
const REFRESH: &str = "auth/permissions:refreshSubscriptionPermissions";

#[tokio::test]
async fn defect_11_observers_get_read_only_subscription_permissions() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let grace = env.user("grace", Some(ORG_A), "member").await;
    let olga = env.user("olga", Some(ORG_A), "member").await;
    let id = env
        .meeting(&ada, &[(&grace, "participant"), (&olga, "observer")])
        .await;
    let check = |resource: &str, required: Json| json!({ "resourceType": resource, "resourceId": id, "requiredPermissions": required });
    for (who, resource, perms) in [
        (
            &ada,
            "meetingNotes",
            json!(["read", "write", "manage", "export"]),
        ),
        (&grace, "meetingNotes", json!(["read", "write"])),
        (&olga, "meetingNotes", json!(["read"])),
        (&olga, "messages", json!(["read"])),
        (&grace, "participants", json!(["read"])),
        (
            &ada,
            "participants",
            json!(["read", "invite", "remove", "manage"]),
        ),
    ] {
        let out = env
            .query(who, VALIDATE, check(resource, json!(["read"])))
            .await
            .unwrap();
        assert_eq!(out["permissions"], perms, "{} on {resource}", who.name);
        assert_eq!(out["granted"], true);
    }
    // The original let observers write notes.
    let out = env
        .query(&olga, VALIDATE, check("meetingNotes", json!(["write"])))
        .await
        .unwrap();
    assert_eq!(out["granted"], false);
    let out = env
        .query(&grace, VALIDATE, check("whiteboard", json!(["read"])))
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({"granted": false, "permissions": [], "metadata": {"error": "Unknown resource type \"whiteboard\""}})
    );
}

#[tokio::test]
async fn subscription_permissions_follow_role_changes_and_removal() {
    let env = Env::new().await;
    let ada = env.user("ada", Some(ORG_A), "member").await;
    let grace = env.user("grace", Some(ORG_A), "member").await;
    let id = env.meeting(&ada, &[(&grace, "participant")]).await;
    let args = json!({ "resourceType": "meetingNotes", "resourceId": id, "requiredPermissions": ["manage"] });
    let (out, sub) = env.subscribe(&grace, VALIDATE, args.clone()).await;
    assert_eq!(out.result.unwrap().to_json()["granted"], false);

    env.mutation(
        &ada,
        &path("updateParticipantRole"),
        json!({ "meetingId": id, "userId": grace.id, "newRole": "host" }),
    )
    .await
    .unwrap();
    assert!(sub.invalidated_at().is_some());
    let (out, sub) = env.subscribe(&grace, VALIDATE, args.clone()).await;
    assert_eq!(out.result.unwrap().to_json()["granted"], true);

    env.mutation(
        &ada,
        &path("removeParticipant"),
        json!({ "meetingId": id, "userId": grace.id }),
    )
    .await
    .unwrap();
    assert!(sub.invalidated_at().is_some());
    let (out, _) = env.subscribe(&grace, VALIDATE, args).await;
    let out = out.result.unwrap().to_json();
    assert_eq!(out["granted"], false);
    assert_eq!(
        out["metadata"]["error"],
        "Access denied: Not a meeting participant"
    );

    let refreshed = env
        .query(
            &grace,
            REFRESH,
            json!({ "subscriptions": [
                {"resourceType": "messages", "resourceId": id, "permissions": ["read"], "lastValidated": T0_MS as f64}
            ]}),
        )
        .await
        .unwrap();
    assert_eq!(refreshed[0]["valid"], false);
    assert_eq!(refreshed[0]["updatedPermissions"], json!([]));
    // Ada still holds write but not a permission hosts never get.
    let refreshed = env
        .query(
            &ada,
            REFRESH,
            json!({ "subscriptions": [
                {"resourceType": "messages", "resourceId": id, "permissions": ["read", "write"], "lastValidated": 0},
                {"resourceType": "transcripts", "resourceId": id, "permissions": ["write"], "lastValidated": 0}
            ]}),
        )
        .await
        .unwrap();
    assert_eq!(refreshed[0]["valid"], true);
    assert_eq!(refreshed[1]["valid"], false);
    assert_eq!(refreshed[1]["reason"], "Permission no longer held: write");
}
