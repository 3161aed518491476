//! Full-text search indexes on SQLite: the inverted index stays exact through
//! inserts, patches and deletes; filters, prefix matching and BM25 ranking;
//! read-your-writes; reactivity (subscriptions and OCC); backfill of an index
//! added to an existing table; durability across reopen; validation errors.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use database::schema::Table;
use database::search::{MAX_SEARCH_RESULTS, tokenize};
use database::{
    Database, DatabaseOptions, RandomIds, Schema, SearchFilter, SystemClock, TableDef, Transaction,
};
use errors::ErrorCode;
use persistence::{KeyRange, Order};
use persistence_sqlite::{SqliteOptions, SqlitePersistence};
use values::{DocumentId, Value, v};

fn notes_table(with_search: bool) -> TableDef {
    let t = TableDef::new("notes")
        .field("meetingId", v::string())
        .field("content", v::optional(v::string()))
        .field("title", v::optional(v::string()))
        .index("by_meeting", &["meetingId"]);
    if with_search {
        t.search_index("search_content", "content", &["meetingId"])
    } else {
        t
    }
}

fn schema(with_search: bool) -> Arc<Schema> {
    Arc::new(
        Schema::builder()
            .table(notes_table(with_search))
            .table(
                TableDef::new("segments")
                    .field("text", v::string())
                    .search_index("search_text", "text", &[]),
            )
            .build()
            .expect("schema"),
    )
}

async fn open_with(dir: &Path, schema: Arc<Schema>) -> Database {
    let mut last = None;
    for _ in 0..300 {
        match SqlitePersistence::open(
            dir,
            SqliteOptions {
                synchronous_full: false,
                ..Default::default()
            },
        ) {
            Ok(p) => {
                return Database::open(
                    p,
                    schema,
                    Arc::new(SystemClock),
                    Arc::new(RandomIds),
                    DatabaseOptions::default(),
                )
                .await
                .expect("open database");
            }
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    panic!("could not open the store: {last:?}");
}

async fn open(dir: &Path) -> Database {
    open_with(dir, schema(true)).await
}

fn note(meeting: &str, content: &str) -> Value {
    Value::object([
        ("meetingId".to_owned(), Value::from(meeting)),
        ("content".to_owned(), Value::from(content)),
    ])
}

async fn insert(db: &Database, meeting: &str, content: &str) -> DocumentId {
    let mut tx = db.begin(true).await.unwrap();
    let id = tx.insert("notes", note(meeting, content)).unwrap();
    db.commit(tx).await.unwrap();
    id
}

async fn search_in(
    tx: &mut Transaction,
    table: &str,
    index: &str,
    filter: SearchFilter,
    n: usize,
) -> errors::Result<Vec<database::Document>> {
    let table: Arc<Table> = Arc::clone(tx.schema().table(table).unwrap());
    let index = table.index(index).unwrap().clone();
    tx.search(&table, &index, &filter, n).await
}

fn contents(docs: &[database::Document]) -> Vec<String> {
    docs.iter()
        .map(|d| {
            d.field("content")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

/// Search `text` in meeting `meeting`, returning the matching documents.
async fn search_docs(db: &Database, meeting: &str, text: &str) -> Vec<database::Document> {
    let mut tx = db.begin(false).await.unwrap();
    search_in(
        &mut tx,
        "notes",
        "search_content",
        SearchFilter::new()
            .search("content", text)
            .eq("meetingId", meeting),
        100,
    )
    .await
    .unwrap()
}

/// Search `text` in meeting `meeting`, returning the matching contents.
async fn search(db: &Database, meeting: &str, text: &str) -> Vec<String> {
    contents(&search_docs(db, meeting, text).await)
}

/// Every stored entry of the notes search index.
async fn index_entries(db: &Database) -> usize {
    let index = db
        .schema()
        .table("notes")
        .unwrap()
        .index("search_content")
        .unwrap()
        .id;
    let snap = db.snapshot().await.unwrap();
    snap.index_scan(index, &KeyRange::all(), Order::Asc, 100_000)
        .await
        .unwrap()
        .len()
}

#[test]
fn tokenizer_handles_unicode_case_punctuation_and_emoji() {
    assert_eq!(
        tokenize("Roadmap & HIRING: Q3-plan, été… 🎉🎉 naïve ÜBER"),
        ["roadmap", "hiring", "q3", "plan", "été", "naïve", "über"]
    );
    assert_eq!(tokenize("🚀👍🏽"), Vec::<String>::new());
    assert_eq!(tokenize("İstanbul"), ["i\u{307}stanbul"]);
    assert_eq!(tokenize("ПРИВЕТ мир"), ["привет", "мир"]);
}

#[tokio::test]
async fn insert_patch_delete_keep_the_index_exact() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let id = insert(&db, "m1", "Roadmap and hiring, hiring!").await;
    // Distinct terms: roadmap, and, hiring.
    assert_eq!(index_entries(&db).await, 3);
    assert_eq!(search(&db, "m1", "hiring").await.len(), 1);

    // A patch that removes a term: it stops matching; kept terms still match.
    let mut tx = db.begin(true).await.unwrap();
    let mut patch = BTreeMap::new();
    patch.insert(
        "content".to_owned(),
        Some(Value::from("Roadmap and budget")),
    );
    tx.patch(id, patch).await.unwrap();
    db.commit(tx).await.unwrap();
    assert!(search(&db, "m1", "hiring").await.is_empty());
    assert_eq!(search(&db, "m1", "budget").await, ["Roadmap and budget"]);
    assert_eq!(search(&db, "m1", "roadmap").await, ["Roadmap and budget"]);
    assert_eq!(index_entries(&db).await, 3);

    // A patch of another field keeps the entries.
    let mut tx = db.begin(true).await.unwrap();
    let mut patch = BTreeMap::new();
    patch.insert("title".to_owned(), Some(Value::from("Weekly")));
    tx.patch(id, patch).await.unwrap();
    db.commit(tx).await.unwrap();
    assert_eq!(index_entries(&db).await, 3);
    assert_eq!(search(&db, "m1", "budget").await.len(), 1);

    // Moving the note to another meeting moves its entries.
    let mut tx = db.begin(true).await.unwrap();
    let mut patch = BTreeMap::new();
    patch.insert("meetingId".to_owned(), Some(Value::from("m2")));
    tx.patch(id, patch).await.unwrap();
    db.commit(tx).await.unwrap();
    assert!(search(&db, "m1", "budget").await.is_empty());
    assert_eq!(search(&db, "m2", "budget").await.len(), 1);
    assert_eq!(index_entries(&db).await, 3);

    // Removing the searched field removes every entry.
    let mut tx = db.begin(true).await.unwrap();
    let mut patch = BTreeMap::new();
    patch.insert("content".to_owned(), None);
    tx.patch(id, patch).await.unwrap();
    db.commit(tx).await.unwrap();
    assert_eq!(index_entries(&db).await, 0);
    assert!(search(&db, "m2", "budget").await.is_empty());

    let mut tx = db.begin(true).await.unwrap();
    let mut patch = BTreeMap::new();
    patch.insert("content".to_owned(), Some(Value::from("back again")));
    tx.patch(id, patch).await.unwrap();
    db.commit(tx).await.unwrap();
    assert_eq!(index_entries(&db).await, 2);

    let mut tx = db.begin(true).await.unwrap();
    tx.delete(id).await.unwrap();
    db.commit(tx).await.unwrap();
    assert_eq!(index_entries(&db).await, 0);
    assert!(search(&db, "m2", "back").await.is_empty());
}

/// Sets one string field of a note, in its own commit.
async fn patch_field(db: &Database, id: DocumentId, field: &str, value: &str) {
    let mut tx = db.begin(true).await.unwrap();
    let mut patch = BTreeMap::new();
    patch.insert(field.to_owned(), Some(Value::from(value)));
    tx.patch(id, patch).await.unwrap();
    db.commit(tx).await.unwrap();
}

/// The read cache carries index scans across commits that wrote no key in
/// their range; an edit that keeps a term writes no key for it, so a search
/// must still see the edited document.
#[tokio::test]
async fn a_search_sees_edits_that_keep_the_matched_term() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let id = insert(&db, "m1", "Roadmap and hiring").await;
    assert_eq!(search(&db, "m1", "roadmap").await, ["Roadmap and hiring"]);
    patch_field(&db, id, "content", "Roadmap and hiring, and budget").await;
    assert_eq!(
        search(&db, "m1", "roadmap").await,
        ["Roadmap and hiring, and budget"]
    );
    patch_field(&db, id, "title", "Weekly").await;
    let docs = search_docs(&db, "m1", "roadmap").await;
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].field("title"), Some(&Value::from("Weekly")));
}

#[tokio::test]
async fn filters_select_one_meeting_and_absent_filters_scan_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    insert(&db, "m1", "hiring plan for q3").await;
    insert(&db, "m2", "hiring freeze").await;
    insert(&db, "m2", "nothing relevant").await;
    assert_eq!(search(&db, "m1", "hiring").await, ["hiring plan for q3"]);
    assert_eq!(search(&db, "m2", "hiring").await, ["hiring freeze"]);
    assert!(search(&db, "m3", "hiring").await.is_empty());

    // Without eq on the filter field: every meeting (table scan).
    let mut tx = db.begin(false).await.unwrap();
    let docs = search_in(
        &mut tx,
        "notes",
        "search_content",
        SearchFilter::new().search("content", "hiring"),
        10,
    )
    .await
    .unwrap();
    let mut found = contents(&docs);
    found.sort();
    assert_eq!(found, ["hiring freeze", "hiring plan for q3"]);
}

#[tokio::test]
async fn the_last_term_matches_as_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    insert(&db, "m", "the roadmap review").await;
    insert(&db, "m", "a road trip").await;
    insert(&db, "m", "broad strokes").await;
    let mut prefix = search(&db, "m", "road").await;
    prefix.sort();
    assert_eq!(prefix, ["a road trip", "the roadmap review"]);
    // Not the last term: exact only.
    assert_eq!(search(&db, "m", "road zzz").await, ["a road trip"]);
    // Typing the next word.
    assert_eq!(
        search(&db, "m", "roadmap rev").await,
        ["the roadmap review"]
    );
    assert!(search(&db, "m", "roads").await.is_empty());
    // Punctuation-only and empty queries match nothing.
    assert!(search(&db, "m", "").await.is_empty());
    assert!(search(&db, "m", " ?! ").await.is_empty());
    // Case and accents of the query are normalised like the document's.
    insert(&db, "m", "Crème brûlée").await;
    assert_eq!(search(&db, "m", "CRÈME").await, ["Crème brûlée"]);
}

#[tokio::test]
async fn ranking_prefers_more_occurrences_rarer_terms_then_newer() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    insert(&db, "m", "budget one two three four").await;
    insert(&db, "m", "budget budget budget two three").await;
    insert(&db, "m", "budget one budget three four").await;
    assert_eq!(
        search(&db, "m", "budget").await,
        [
            "budget budget budget two three",
            "budget one budget three four",
            "budget one two three four"
        ]
    );

    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    for i in 0..5 {
        insert(&db, "m", &format!("common words number{i}")).await;
    }
    insert(&db, "m", "rare gem here").await;
    let ranked = search(&db, "m", "common rare").await;
    assert_eq!(ranked.len(), 6);
    assert_eq!(ranked[0], "rare gem here");
    // Equal scores: newest first.
    assert_eq!(
        &ranked[1..],
        [
            "common words number4",
            "common words number3",
            "common words number2",
            "common words number1",
            "common words number0"
        ]
    );
}

#[tokio::test]
async fn a_transaction_searches_its_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let old = insert(&db, "m", "stale agenda").await;
    let kept = insert(&db, "m", "agenda for friday").await;
    let mut tx = db.begin(true).await.unwrap();
    tx.insert("notes", note("m", "fresh agenda item")).unwrap();
    tx.delete(old).await.unwrap();
    let mut patch = BTreeMap::new();
    patch.insert(
        "content".to_owned(),
        Some(Value::from("minutes for friday")),
    );
    tx.patch(kept, patch).await.unwrap();
    let filter = || {
        SearchFilter::new()
            .search("content", "agenda")
            .eq("meetingId", "m")
    };
    let docs = search_in(&mut tx, "notes", "search_content", filter(), 10)
        .await
        .unwrap();
    assert_eq!(contents(&docs), ["fresh agenda item"]);
    let docs = search_in(
        &mut tx,
        "notes",
        "search_content",
        SearchFilter::new()
            .search("content", "friday")
            .eq("meetingId", "m"),
        10,
    )
    .await
    .unwrap();
    assert_eq!(contents(&docs), ["minutes for friday"]);
    // Another transaction does not see them before the commit.
    assert_eq!(search(&db, "m", "agenda").await.len(), 2);
    db.commit(tx).await.unwrap();
    assert_eq!(search(&db, "m", "agenda").await, ["fresh agenda item"]);
}

#[tokio::test]
async fn a_live_search_is_invalidated_only_by_matching_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let existing = insert(&db, "m1", "retro notes").await;
    let subscribe = || async {
        let mut tx = db.begin(false).await.unwrap();
        let docs = search_in(
            &mut tx,
            "notes",
            "search_content",
            SearchFilter::new()
                .search("content", "hiring ret")
                .eq("meetingId", "m1"),
            10,
        )
        .await
        .unwrap();
        let ts = tx.ts();
        let sub = db
            .subscriptions()
            .subscribe(Arc::new(tx.into_read_set()), ts);
        (docs.len(), sub)
    };
    let (n, sub) = subscribe().await;
    assert_eq!(n, 1);

    // A matching document in another meeting, a non-matching one in this
    // meeting: no invalidation.
    insert(&db, "m2", "hiring retro").await;
    insert(&db, "m1", "unrelated words").await;
    assert_eq!(sub.invalidated_at(), None);

    // A matching document (by the prefix term) in this meeting.
    let ts = {
        let mut tx = db.begin(true).await.unwrap();
        tx.insert("notes", note("m1", "retrospective")).unwrap();
        db.commit(tx).await.unwrap()
    };
    assert_eq!(sub.invalidated_at(), Some(ts));
    let (n, sub) = subscribe().await;
    assert_eq!(n, 2);

    // Editing a matching document elsewhere in its text changes its score:
    // invalidated too.
    let mut tx = db.begin(true).await.unwrap();
    let mut patch = BTreeMap::new();
    patch.insert(
        "content".to_owned(),
        Some(Value::from("retro notes, longer")),
    );
    tx.patch(existing, patch).await.unwrap();
    let ts = db.commit(tx).await.unwrap();
    assert_eq!(sub.invalidated_at(), Some(ts));
}

async fn add_segment(db: &Database, text: &str) -> persistence::Timestamp {
    let mut tx = db.begin(true).await.unwrap();
    tx.insert(
        "segments",
        Value::object([("text".to_owned(), Value::from(text))]),
    )
    .unwrap();
    db.commit(tx).await.unwrap()
}

#[tokio::test]
async fn a_search_without_filter_fields_is_reactive_by_term() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let mut tx = db.begin(false).await.unwrap();
    let docs = search_in(
        &mut tx,
        "segments",
        "search_text",
        SearchFilter::new().search("text", "deadline friday"),
        10,
    )
    .await
    .unwrap();
    assert!(docs.is_empty());
    let ts = tx.ts();
    let sub = db
        .subscriptions()
        .subscribe(Arc::new(tx.into_read_set()), ts);
    add_segment(&db, "we met on monday").await;
    add_segment(&db, "deadlines are hard").await; // "deadline" is exact-only here
    assert_eq!(sub.invalidated_at(), None);
    let ts = add_segment(&db, "the deadline moved").await;
    assert_eq!(sub.invalidated_at(), Some(ts));
}

#[tokio::test]
async fn a_mutation_that_searched_conflicts_with_a_matching_insert() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let mut t1 = db.begin(true).await.unwrap();
    let found = search_in(
        &mut t1,
        "notes",
        "search_content",
        SearchFilter::new()
            .search("content", "budget")
            .eq("meetingId", "m"),
        10,
    )
    .await
    .unwrap();
    assert!(found.is_empty());
    t1.insert("notes", note("m", "summary: no budget yet"))
        .unwrap();
    insert(&db, "m", "budget approved").await;
    let err = db.commit(t1).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::WriteConflict);
}

#[tokio::test]
async fn an_index_added_to_an_existing_table_is_backfilled_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open_with(dir.path(), schema(false)).await;
        let mut tx = db.begin(true).await.unwrap();
        tx.insert("notes", note("m", "quarterly planning")).unwrap();
        tx.insert("notes", note("m", "planning poker")).unwrap();
        tx.insert("notes", note("x", "planning elsewhere")).unwrap();
        db.commit(tx).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    {
        let db = open(dir.path()).await;
        assert_eq!(index_entries(&db).await, 6);
        let mut found = search(&db, "m", "planning").await;
        found.sort();
        assert_eq!(found, ["planning poker", "quarterly planning"]);
        insert(&db, "m", "planning retro").await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Reopen with the same definition: nothing rebuilt, everything there.
    let db = open(dir.path()).await;
    assert_eq!(index_entries(&db).await, 8);
    assert_eq!(search(&db, "m", "planning").await.len(), 3);
    assert_eq!(search(&db, "m", "retro").await, ["planning retro"]);
}

#[tokio::test]
async fn results_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let mut tx = db.begin(true).await.unwrap();
    for i in 0..(MAX_SEARCH_RESULTS + 10) {
        tx.insert("notes", note("m", &format!("standup {i}")))
            .unwrap();
    }
    db.commit(tx).await.unwrap();
    let mut tx = db.begin(false).await.unwrap();
    let docs = search_in(
        &mut tx,
        "notes",
        "search_content",
        SearchFilter::new()
            .search("content", "standup")
            .eq("meetingId", "m"),
        usize::MAX,
    )
    .await
    .unwrap();
    assert_eq!(docs.len(), MAX_SEARCH_RESULTS);
}

#[tokio::test]
async fn invalid_searches_are_validation_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let mut tx = db.begin(false).await.unwrap();
    let cases = [
        ("search_content", SearchFilter::new().eq("meetingId", "m")),
        ("search_content", SearchFilter::new().search("title", "x")),
        (
            "search_content",
            SearchFilter::new().search("content", "x").eq("title", "t"),
        ),
        (
            "search_content",
            SearchFilter::new()
                .search("content", "x")
                .eq("meetingId", "a")
                .eq("meetingId", "b"),
        ),
        (
            "search_content",
            SearchFilter::new()
                .search("content", "x")
                .search("content", "y"),
        ),
        (
            "search_content",
            SearchFilter::new().search("content", "a b c d e f g h i j k l m n o p q r s"),
        ),
        ("by_meeting", SearchFilter::new().search("content", "x")),
    ];
    for (index, filter) in cases {
        let err = search_in(&mut tx, "notes", index, filter.clone(), 10)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationError, "{filter:?}: {err}");
    }
}

#[tokio::test]
async fn an_edit_puts_only_changed_terms_in_the_write_set() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let long: String = (0..300).map(|i| format!("word{i} ")).collect();
    let id = insert(&db, "m", &long).await;
    let index = db
        .schema()
        .table("notes")
        .unwrap()
        .index("search_content")
        .unwrap()
        .id;
    let before = db.latest_ts();
    let mut tx = db.begin(true).await.unwrap();
    let mut patch = BTreeMap::new();
    patch.insert(
        "content".to_owned(),
        Some(Value::from(format!("{long} word0 added").as_str())),
    );
    tx.patch(id, patch).await.unwrap();
    db.commit(tx).await.unwrap();
    let entries = db.persistence().commits_after(before, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    let ws = database::readset::WriteSet::decode(&entries[0].log).unwrap();
    let search_keys = ws.keys.iter().filter(|k| k.index == index).count();
    assert_eq!(search_keys, 1, "only the new term \"added\"");
    assert_eq!(index_entries(&db).await, 301);
    // The document is still found by its old terms, with its new text.
    assert_eq!(search(&db, "m", "word299").await.len(), 1);
    assert_eq!(search(&db, "m", "added").await.len(), 1);
}
