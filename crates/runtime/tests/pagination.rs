//! Pagination through `QueryBuilder::paginate` inside query functions:
//! ordered pages with `continueCursor` and `isDone`, cursor validation, the
//! query journal (a re-run page grows instead of shifting) and the
//! one-`paginate`-per-function rule.

mod common;

use common::{Env, add_helpers, expect_err, json};
use database::{Document, Order, Page};
use errors::{ErrorCode, Result};
use runtime::{
    FunctionDef, PaginationOptsArg, QueryBuilder, QueryOutcome, Registry, Visibility,
    page_to_value, pagination_opts_validator,
};
use serde::Deserialize;
use serde_json::json;
use values::{Value, v};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageArgs {
    pagination_opts: PaginationOptsArg,
}

#[derive(Deserialize)]
struct NArgs {
    n: f64,
}

fn to_value(page: Page<Document>) -> Result<Value> {
    page_to_value(Page {
        page: page.page.into_iter().map(Document::into_value).collect(),
        is_done: page.is_done,
        continue_cursor: page.continue_cursor,
    })
}

async fn paginate(q: QueryBuilder, a: &PageArgs) -> Result<Value> {
    to_value(q.paginate(a.pagination_opts.to_opts()?).await?)
}

fn registry() -> Registry {
    let mut r = Registry::new();
    add_helpers(&mut r);
    let args = || v::object([("paginationOpts", pagination_opts_validator())]);
    r.register(
        FunctionDef::new("items:byN", Visibility::Public)
            .args(args())
            .query(|ctx, a: PageArgs| async move {
                paginate(ctx.db.query("items").with_index("by_n", |r| r), &a).await
            }),
    );
    r.register(
        FunctionDef::new("items:byNDesc", Visibility::Public)
            .args(args())
            .query(|ctx, a: PageArgs| async move {
                paginate(
                    ctx.db
                        .query("items")
                        .with_index("by_n", |r| r)
                        .order(Order::Desc),
                    &a,
                )
                .await
            }),
    );
    r.register(
        FunctionDef::new("items:byCreation", Visibility::Public)
            .args(args())
            .query(|ctx, a: PageArgs| async move { paginate(ctx.db.query("items"), &a).await }),
    );
    r.register(
        FunctionDef::new("items:evenByN", Visibility::Public)
            .args(args())
            .query(|ctx, a: PageArgs| async move {
                let q =
                    ctx.db.query("items").with_index("by_n", |r| r).filter(|d| {
                        d.field("n").and_then(Value::as_f64).unwrap_or(1.0) % 2.0 == 0.0
                    });
                paginate(q, &a).await
            }),
    );
    r.register(
        FunctionDef::new("items:twice", Visibility::Public)
            .args(args())
            .query(|ctx, a: PageArgs| async move {
                let opts = a.pagination_opts.to_opts()?;
                let _first = ctx.db.query("items").paginate(opts.clone()).await?;
                let second = ctx.db.query("items").paginate(opts).await?;
                to_value(second)
            }),
    );
    r.register(
        FunctionDef::new("items:add", Visibility::Public)
            .args(v::object([("n", v::number())]))
            .mutation(|ctx, a: NArgs| async move {
                Ok(ctx.db.insert("items", json!({ "n": a.n })).await?.encode())
            }),
    );
    r
}

async fn env_with(ns: &[u32]) -> Env {
    let env = Env::new(registry()).await;
    for n in ns {
        env.mutation("items:add", json!({ "n": n })).await.unwrap();
    }
    env
}

async fn run_page(
    env: &Env,
    path: &str,
    num_items: usize,
    cursor: Option<&str>,
    journal: Option<String>,
) -> QueryOutcome {
    let spec = env.rt.resolve_public(path, None).unwrap();
    env.rt
        .run_query(
            &spec,
            json(json!({ "paginationOpts": { "numItems": num_items, "cursor": cursor } })),
            None,
            None,
            journal,
        )
        .await
}

/// `(n values, isDone, continueCursor)` of a page result.
fn parts(v: &Value) -> (Vec<u32>, bool, String) {
    let j = v.to_json();
    let ns = j["page"]
        .as_array()
        .expect("page array")
        .iter()
        .map(|d| d["n"].as_f64().unwrap() as u32)
        .collect();
    (
        ns,
        j["isDone"].as_bool().unwrap(),
        j["continueCursor"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn pages_come_in_order_and_the_last_is_done() {
    // Inserted out of order: the index orders them.
    let env = env_with(&[70, 10, 100, 40, 20, 90, 30, 60, 50, 80]).await;
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let out = run_page(&env, "items:byN", 3, cursor.as_deref(), None).await;
        let (ns, done, next) = parts(&out.result.unwrap());
        assert_eq!(out.journal.as_deref(), Some(next.as_str()));
        pages.push((ns, done));
        if done {
            break;
        }
        cursor = Some(next);
        assert!(pages.len() < 10, "pagination does not terminate");
    }
    assert_eq!(
        pages,
        vec![
            (vec![10, 20, 30], false),
            (vec![40, 50, 60], false),
            (vec![70, 80, 90], false),
            (vec![100], true),
        ]
    );

    // Descending order walks the same index backwards.
    let out = run_page(&env, "items:byNDesc", 4, None, None).await;
    let (ns, done, next) = parts(&out.result.unwrap());
    assert_eq!((ns, done), (vec![100, 90, 80, 70], false));
    let out = run_page(&env, "items:byNDesc", 4, Some(&next), None).await;
    assert_eq!(parts(&out.result.unwrap()).0, vec![60, 50, 40, 30]);
}

#[tokio::test]
async fn an_empty_table_is_one_done_page() {
    let env = env_with(&[]).await;
    let out = run_page(&env, "items:byN", 5, None, None).await;
    let (ns, done, _) = parts(&out.result.unwrap());
    assert!(ns.is_empty());
    assert!(done);
}

#[tokio::test]
async fn malformed_and_foreign_cursors_are_invalid() {
    let env = env_with(&[1, 2, 3, 4]).await;
    for bad in ["not-a-cursor", "", "AAAAAAAAAA"] {
        let out = run_page(&env, "items:byN", 2, Some(bad), None).await;
        let e = expect_err(out.result, ErrorCode::InvalidCursor);
        assert!(e.is_application(), "clients see InvalidCursor data");
    }
    // A cursor of the by_creation_time index is rejected by the by_n query.
    let out = run_page(&env, "items:byCreation", 2, None, None).await;
    let (ns, done, foreign) = parts(&out.result.unwrap());
    assert_eq!((ns.len(), done), (2, false));
    let out = run_page(&env, "items:byN", 2, Some(&foreign), None).await;
    expect_err(out.result, ErrorCode::InvalidCursor);
    // And the by_n cursor still works where it belongs.
    let out = run_page(&env, "items:byN", 2, None, None).await;
    let (_, _, own) = parts(&out.result.unwrap());
    let out = run_page(&env, "items:byN", 2, Some(&own), None).await;
    assert_eq!(parts(&out.result.unwrap()).0, vec![3, 4]);
}

#[tokio::test]
async fn with_the_journal_a_rerun_page_grows_instead_of_shifting() {
    let env = env_with(&[10, 20, 30, 40, 50, 60]).await;
    let first = run_page(&env, "items:byN", 3, None, None).await;
    let (ns, done, cursor) = parts(first.result.as_ref().unwrap());
    assert_eq!((ns, done), (vec![10, 20, 30], false));
    let journal = first
        .journal
        .clone()
        .expect("a paginated query has a journal");

    // New documents inside the first page's range, one before it, one after.
    for n in [5, 15, 25, 35] {
        env.mutation("items:add", json!({ "n": n })).await.unwrap();
    }

    // The reactive re-run with the journal: same end, more items.
    let rerun = run_page(&env, "items:byN", 3, None, Some(journal.clone())).await;
    let (ns, done, rerun_cursor) = parts(&rerun.result.unwrap());
    assert_eq!(ns, vec![5, 10, 15, 20, 25, 30]);
    assert!(ns.len() > 3);
    assert!(!done);
    assert_eq!(rerun_cursor, cursor, "the page ends where it ended");
    assert_eq!(rerun.journal, Some(journal));

    // The next page continues right after the grown page: nothing skipped.
    let next = run_page(&env, "items:byN", 3, Some(&rerun_cursor), None).await;
    assert_eq!(parts(&next.result.unwrap()).0, vec![35, 40, 50]);

    // Without the journal the first page shifts instead.
    let fresh = run_page(&env, "items:byN", 3, None, None).await;
    assert_eq!(parts(&fresh.result.unwrap()).0, vec![5, 10, 15]);
}

#[tokio::test]
async fn the_journal_also_pins_descending_pages() {
    let env = env_with(&[10, 20, 30, 40, 50, 60]).await;
    let first = run_page(&env, "items:byNDesc", 3, None, None).await;
    let (ns, _, cursor) = parts(first.result.as_ref().unwrap());
    assert_eq!(ns, vec![60, 50, 40]);
    for n in [65, 55, 45, 35] {
        env.mutation("items:add", json!({ "n": n })).await.unwrap();
    }
    let rerun = run_page(&env, "items:byNDesc", 3, None, first.journal).await;
    let (ns, done, rerun_cursor) = parts(&rerun.result.unwrap());
    assert_eq!(ns, vec![65, 60, 55, 50, 45, 40]);
    assert!(!done);
    assert_eq!(rerun_cursor, cursor);
    let next = run_page(&env, "items:byNDesc", 3, Some(&cursor), None).await;
    assert_eq!(parts(&next.result.unwrap()).0, vec![35, 30, 20]);
}

#[tokio::test]
async fn the_journal_of_a_finished_page_keeps_it_open_ended() {
    let env = env_with(&[1, 2]).await;
    let first = run_page(&env, "items:byN", 10, None, None).await;
    let (ns, done, _) = parts(&first.result.unwrap());
    assert_eq!((ns, done), (vec![1, 2], true));
    env.mutation("items:add", json!({ "n": 3 })).await.unwrap();
    let rerun = run_page(&env, "items:byN", 10, None, first.journal).await;
    let (ns, done, _) = parts(&rerun.result.unwrap());
    assert_eq!((ns, done), (vec![1, 2, 3], true));
}

#[tokio::test]
async fn paginating_twice_in_one_function_is_an_error() {
    let env = env_with(&[1, 2, 3]).await;
    let out = run_page(&env, "items:twice", 2, None, None).await;
    let e = expect_err(out.result, ErrorCode::BadRequest);
    assert!(
        e.message().contains("MultiplePaginatedDatabaseQueries"),
        "{e}"
    );
}

#[tokio::test]
async fn filtered_pagination_does_not_skip_documents() {
    // Fewer documents than one internal scan chunk, most passing the filter:
    // a page that fills up before the chunk is consumed is not the last page.
    let env = env_with(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]).await;
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let out = run_page(&env, "items:evenByN", 2, cursor.as_deref(), None).await;
        let (ns, done, next) = parts(&out.result.unwrap());
        pages.push(ns);
        if done {
            break;
        }
        cursor = Some(next);
        assert!(pages.len() < 10, "pagination does not terminate");
    }
    let all: Vec<u32> = pages.concat();
    assert_eq!(all, vec![2, 4, 6, 8, 10, 12], "pages: {pages:?}");
    assert!(pages.iter().all(|p| p.len() <= 2), "pages: {pages:?}");
}
