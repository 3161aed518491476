//! Meeting chat through a real `Runtime` over SQLite with a `TestClock`:
//! sending, newest-first pagination, threads, edits, deletions, the rate
//! limit, content limits, roles and live updates.
#![allow(missing_docs)]

mod meetings_support;

use errors::ErrorCode;
use meetings_support::{Env, ORG_A, TestUser, expect_code};
use serde_json::{Value as Json, json};

const SEND: &str = "messaging/mutations:sendMessage";
const EDIT: &str = "messaging/mutations:editMessage";
const DELETE: &str = "messaging/mutations:deleteMessage";
const LIST: &str = "messaging/queries:listMessages";
const THREAD: &str = "messaging/queries:listThread";

struct Chat {
    env: Env,
    host: TestUser,
    alice: TestUser,
    bob: TestUser,
    olga: TestUser,
    meeting: String,
}

async fn chat() -> Chat {
    let env = Env::new().await;
    let host = env.user("hana", Some(ORG_A), "member").await;
    let alice = env.user("alice", Some(ORG_A), "member").await;
    let bob = env.user("bob", Some(ORG_A), "member").await;
    let olga = env.user("olga", Some(ORG_A), "member").await;
    let meeting = env
        .meeting(
            &host,
            &[
                (&alice, "participant"),
                (&bob, "participant"),
                (&olga, "observer"),
            ],
        )
        .await;
    Chat {
        env,
        host,
        alice,
        bob,
        olga,
        meeting,
    }
}

impl Chat {
    async fn send(&self, who: &TestUser, content: &str) -> String {
        self.env
            .mutation(
                who,
                SEND,
                json!({ "meetingId": self.meeting, "content": content }),
            )
            .await
            .expect("sendMessage")
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn reply(&self, who: &TestUser, parent: &str, content: &str) -> String {
        self.env
            .mutation(
                who,
                SEND,
                json!({ "meetingId": self.meeting, "content": content, "parentId": parent }),
            )
            .await
            .expect("reply")
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn page(&self, who: &TestUser, n: f64, cursor: Json) -> Json {
        self.env
            .query(
                who,
                LIST,
                json!({ "meetingId": self.meeting, "paginationOpts": {"numItems": n, "cursor": cursor} }),
            )
            .await
            .expect("listMessages")
    }

    async fn contents(&self, who: &TestUser) -> Vec<String> {
        let page = self.page(who, 100.0, Json::Null).await;
        page["page"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect()
    }
}

#[tokio::test]
async fn defect_37_chat_is_built_messages_list_newest_first_in_pages() {
    let c = chat().await;
    for i in 0..5 {
        c.send(if i % 2 == 0 { &c.alice } else { &c.bob }, &format!("m{i}"))
            .await;
        c.env.clock.advance_ms(1);
    }
    let mut seen = Vec::new();
    let mut cursor = Json::Null;
    let mut pages = 0;
    loop {
        let page = c.page(&c.olga, 2.0, cursor).await;
        pages += 1;
        for m in page["page"].as_array().unwrap() {
            seen.push(m["content"].as_str().unwrap().to_owned());
            assert_eq!(m["meetingId"], c.meeting.as_str());
            assert!(m.get("parentId").is_none(), "top-level: {m}");
        }
        if page["isDone"] == true {
            break;
        }
        cursor = page["continueCursor"].clone();
    }
    assert_eq!(seen, ["m4", "m3", "m2", "m1", "m0"]);
    assert_eq!(pages, 3);
    let stored = c.env.docs("messages").await;
    assert_eq!(stored.len(), 5);
    assert_eq!(stored[0]["userId"], c.alice.id.as_str());
    expect_code(
        c.env
            .query(
                &c.alice,
                LIST,
                json!({ "meetingId": c.meeting, "paginationOpts": {"numItems": -1, "cursor": null} }),
            )
            .await,
        ErrorCode::ValidationError,
    );
}

#[tokio::test]
async fn replies_form_threads_one_level_deep() {
    let c = chat().await;
    let root = c.send(&c.alice, "Agenda?").await;
    c.env.clock.advance_ms(5);
    let other = c.send(&c.bob, "Running late").await;
    c.env.clock.advance_ms(5);
    let r1 = c.reply(&c.bob, &root, "Hiring plan").await;
    c.env.clock.advance_ms(5);
    let r2 = c.reply(&c.host, &root, "And the roadmap").await;

    // The channel shows top-level messages only, with thread summaries.
    let page = c.page(&c.alice, 10.0, Json::Null).await;
    let items = page["page"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["_id"], other.as_str());
    assert_eq!(items[1]["_id"], root.as_str());
    assert_eq!(items[1]["replyCount"], 2.0);
    assert!(items[1]["lastReplyAt"].is_number());

    let thread = c
        .env
        .query(&c.olga, THREAD, json!({ "messageId": root }))
        .await
        .unwrap();
    assert_eq!(thread["message"]["_id"], root.as_str());
    let replies: Vec<(&str, &str)> = thread["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["_id"].as_str().unwrap(), r["parentId"].as_str().unwrap()))
        .collect();
    assert_eq!(
        replies,
        [(r1.as_str(), root.as_str()), (r2.as_str(), root.as_str())]
    );
    // A reply's id leads to the same thread.
    let via_reply = c
        .env
        .query(&c.olga, THREAD, json!({ "messageId": r2 }))
        .await
        .unwrap();
    assert_eq!(via_reply, thread);

    let e = expect_code(
        c.env
            .mutation(
                &c.alice,
                SEND,
                json!({ "meetingId": c.meeting, "content": "nested", "parentId": r1 }),
            )
            .await,
        ErrorCode::ValidationError,
    );
    assert!(e.message().contains("top-level"), "{e}");
    let elsewhere = c.env.meeting(&c.alice, &[]).await;
    expect_code(
        c.env
            .mutation(
                &c.alice,
                SEND,
                json!({ "meetingId": elsewhere, "content": "cross", "parentId": root }),
            )
            .await,
        ErrorCode::ValidationError,
    );
}

#[tokio::test]
async fn authors_edit_their_own_messages_only() {
    let c = chat().await;
    let id = c.send(&c.alice, "Draft agenda").await;
    c.env
        .mutation(
            &c.alice,
            EDIT,
            json!({ "messageId": id, "content": "  Final agenda " }),
        )
        .await
        .unwrap();
    let page = c.page(&c.bob, 10.0, Json::Null).await;
    assert_eq!(page["page"][0]["content"], "Final agenda");
    assert!(page["page"][0]["editedAt"].is_number());
    // Not even a host edits someone else's words.
    for who in [&c.bob, &c.host] {
        expect_code(
            c.env
                .mutation(who, EDIT, json!({ "messageId": id, "content": "hijack" }))
                .await,
            ErrorCode::Forbidden,
        );
    }
    expect_code(
        c.env
            .mutation(&c.alice, EDIT, json!({ "messageId": id, "content": " " }))
            .await,
        ErrorCode::ValidationError,
    );
    c.env
        .mutation(&c.alice, DELETE, json!({ "messageId": id }))
        .await
        .unwrap();
    expect_code(
        c.env
            .mutation(
                &c.alice,
                EDIT,
                json!({ "messageId": id, "content": "back" }),
            )
            .await,
        ErrorCode::NotFound,
    );
}

#[tokio::test]
async fn authors_delete_their_own_and_hosts_delete_any_with_an_audit_trail() {
    let c = chat().await;
    let mine = c.send(&c.alice, "typo").await;
    let bobs = c.send(&c.bob, "off-topic").await;
    expect_code(
        c.env
            .mutation(&c.alice, DELETE, json!({ "messageId": bobs }))
            .await,
        ErrorCode::Forbidden,
    );
    c.env
        .mutation(&c.alice, DELETE, json!({ "messageId": mine }))
        .await
        .unwrap();
    c.env
        .mutation(&c.host, DELETE, json!({ "messageId": bobs }))
        .await
        .unwrap();
    assert!(c.env.docs("messages").await.is_empty());
    expect_code(
        c.env
            .mutation(&c.host, DELETE, json!({ "messageId": bobs }))
            .await,
        ErrorCode::NotFound,
    );
    let audit = c.env.docs("auditLogs").await;
    let deleted: Vec<&Json> = audit
        .iter()
        .filter(|a| a["action"] == "message.deleted")
        .collect();
    assert_eq!(deleted.len(), 2);
    let by_host = deleted
        .iter()
        .find(|a| a["resourceId"] == bobs.as_str())
        .unwrap();
    assert_eq!(by_host["actorUserId"], c.host.id.as_str());
    assert_eq!(by_host["metadata"]["byHost"], true);
    assert_eq!(by_host["metadata"]["authorId"], c.bob.id.as_str());
    assert_eq!(by_host["orgId"], ORG_A);
}

#[tokio::test]
async fn deleting_a_message_with_replies_leaves_a_tombstone() {
    let c = chat().await;
    let root = c.send(&c.alice, "Slides attached").await;
    let reply = c.reply(&c.bob, &root, "Thanks").await;
    c.env
        .mutation(&c.alice, DELETE, json!({ "messageId": root }))
        .await
        .unwrap();
    let thread = c
        .env
        .query(&c.bob, THREAD, json!({ "messageId": root }))
        .await
        .unwrap();
    assert_eq!(thread["message"]["content"], "");
    assert!(thread["message"]["deletedAt"].is_number());
    assert_eq!(thread["replies"][0]["_id"], reply.as_str());
    // Deleting the last reply removes the tombstone too.
    c.env
        .mutation(&c.bob, DELETE, json!({ "messageId": reply }))
        .await
        .unwrap();
    assert!(c.env.docs("messages").await.is_empty());
    expect_code(
        c.env
            .query(&c.bob, THREAD, json!({ "messageId": root }))
            .await,
        ErrorCode::NotFound,
    );
    // A live thread keeps its root while replies remain.
    let kept = c.send(&c.alice, "Poll: Tuesday or Thursday?").await;
    let r1 = c.reply(&c.bob, &kept, "Tuesday").await;
    c.reply(&c.host, &kept, "Thursday").await;
    c.env
        .mutation(&c.bob, DELETE, json!({ "messageId": r1 }))
        .await
        .unwrap();
    let page = c.page(&c.bob, 10.0, Json::Null).await;
    assert_eq!(page["page"][0]["replyCount"], 1.0);
}

#[tokio::test]
async fn sending_is_rate_limited_per_user() {
    let c = chat().await;
    for i in 0..30 {
        c.send(&c.alice, &format!("burst {i}")).await;
    }
    let e = expect_code(
        c.env
            .mutation(
                &c.alice,
                SEND,
                json!({ "meetingId": c.meeting, "content": "one too many" }),
            )
            .await,
        ErrorCode::RateLimitExceeded,
    );
    assert!(e.metadata().unwrap()["retryAfterSeconds"].as_f64().unwrap() >= 1.0);
    // Another user is not affected.
    c.send(&c.bob, "still here").await;
    // The next window admits again.
    c.env.clock.advance_ms(10_000);
    c.send(&c.alice, "back").await;
    assert_eq!(c.env.docs("messages").await.len(), 32);
}

#[tokio::test]
async fn content_and_attachments_are_limited() {
    let c = chat().await;
    let send = |content: String, attachments: Option<Json>| {
        let mut args = json!({ "meetingId": c.meeting, "content": content });
        if let Some(a) = attachments {
            args["attachments"] = a;
        }
        c.env.mutation(&c.alice, SEND, args)
    };
    send("x".repeat(4_000), None).await.unwrap();
    let e = expect_code(
        send("x".repeat(4_001), None).await,
        ErrorCode::ValidationError,
    );
    assert_eq!(
        e.message(),
        "Message is too long: 4001 characters (at most 4000)"
    );
    let e = expect_code(send(" \n ".into(), None).await, ErrorCode::ValidationError);
    assert_eq!(e.message(), "Message content cannot be empty");
    let image = json!({"kind": "image", "url": "https://cdn.example.com/a.png", "size": 2048, "contentType": "image/png"});
    let id = send(String::new(), Some(json!([image.clone()])))
        .await
        .unwrap();
    let stored = c.env.docs("messages").await;
    let doc = stored.iter().find(|d| d["_id"] == id).unwrap();
    assert_eq!(
        doc["attachments"][0]["url"],
        "https://cdn.example.com/a.png"
    );
    expect_code(
        send(
            "see".into(),
            Some(json!([{"kind": "url", "url": "javascript:alert(1)"}])),
        )
        .await,
        ErrorCode::ValidationError,
    );
    expect_code(
        send("many".into(), Some(Json::Array(vec![image; 11]))).await,
        ErrorCode::ValidationError,
    );
}

#[tokio::test]
async fn defect_11_observers_read_the_chat_but_never_write() {
    let c = chat().await;
    let id = c.send(&c.alice, "hello").await;
    assert_eq!(c.contents(&c.olga).await, ["hello"]);
    for (path, args) in [
        (SEND, json!({ "meetingId": c.meeting, "content": "lurker" })),
        (EDIT, json!({ "messageId": id, "content": "x" })),
        (DELETE, json!({ "messageId": id })),
    ] {
        expect_code(
            c.env.mutation(&c.olga, path, args).await,
            ErrorCode::InsufficientPermissions,
        );
    }
    // An observer's own earlier message stays read-only after a demotion.
    let bobs = c.send(&c.bob, "before demotion").await;
    c.env
        .mutation(
            &c.host,
            "meetings/lifecycle:updateParticipantRole",
            json!({ "meetingId": c.meeting, "userId": c.bob.id, "newRole": "observer" }),
        )
        .await
        .unwrap();
    expect_code(
        c.env
            .mutation(
                &c.bob,
                EDIT,
                json!({ "messageId": bobs, "content": "edit" }),
            )
            .await,
        ErrorCode::InsufficientPermissions,
    );
}

#[tokio::test]
async fn chat_is_read_only_once_the_meeting_is_over() {
    let c = chat().await;
    let id = c.send(&c.alice, "see you").await;
    c.env.start(&c.host, &c.meeting).await;
    c.send(&c.alice, "live now").await;
    c.env
        .mutation(
            &c.host,
            "meetings/lifecycle:endMeeting",
            json!({ "meetingId": c.meeting }),
        )
        .await
        .unwrap();
    expect_code(
        c.env
            .mutation(
                &c.alice,
                SEND,
                json!({ "meetingId": c.meeting, "content": "after" }),
            )
            .await,
        ErrorCode::Conflict,
    );
    expect_code(
        c.env
            .mutation(&c.alice, EDIT, json!({ "messageId": id, "content": "x" }))
            .await,
        ErrorCode::Conflict,
    );
    c.env
        .mutation(&c.alice, DELETE, json!({ "messageId": id }))
        .await
        .unwrap();
    assert_eq!(c.contents(&c.olga).await, ["live now"]);
}

#[tokio::test]
async fn live_chat_updates_only_for_its_meeting() {
    let c = chat().await;
    let args =
        json!({ "meetingId": c.meeting, "paginationOpts": {"numItems": 10, "cursor": null} });
    let (out, sub) = c.env.subscribe(&c.olga, LIST, args.clone()).await;
    assert_eq!(out.result.unwrap().to_json()["page"], json!([]));
    let elsewhere = c.env.meeting(&c.alice, &[]).await;
    c.env
        .mutation(
            &c.alice,
            SEND,
            json!({ "meetingId": elsewhere, "content": "other room" }),
        )
        .await
        .unwrap();
    assert_eq!(sub.invalidated_at(), None);
    c.send(&c.bob, "hi all").await;
    assert!(sub.invalidated_at().is_some());
    let (rerun, _) = c.env.subscribe(&c.olga, LIST, args).await;
    assert_eq!(
        rerun.result.unwrap().to_json()["page"][0]["content"],
        "hi all"
    );
    let _ = &c.host;
}
