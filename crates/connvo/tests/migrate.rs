//! `connvo migrate`: a SQLite deployment written through HTTP is copied to a
//! fresh PostgreSQL schema, verified by per-table counts and checksums, and
//! served from there by `connvo serve --database-url` (indexes rebuilt on
//! open); a running server's data dir is refused (its lock), a non-empty
//! target is refused without `--force`, and `--force` replaces it.
//!
//! Skipped with a loud banner when PostgreSQL (`CONNVO_TEST_POSTGRES_URL`,
//! default `postgres://postgres@127.0.0.1:5432/test`) is unreachable; with
//! `CI=true` that fails instead.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{Server, ServerOptions, TestDir, bin, call_ok, http_client, unique};
use persistence_postgres::testing::TestSchema;
use serde_json::{Value, json};

fn migrate(data_dir: &Path, schema: &TestSchema, extra: &[&str]) -> Output {
    Command::new(bin())
        .arg("migrate")
        .arg("--from")
        .arg(format!("sqlite://{}", data_dir.display()))
        .args(["--to", schema.url(), "--to-schema", schema.name()])
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run connvo migrate")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The report line of `table`: (source count, target count, result).
fn report_row(stdout: &str, table: &str) -> (u64, u64, String) {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(table))
        .unwrap_or_else(|| panic!("no report row for {table}:\n{stdout}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    (
        cols[1].parse().expect("source count"),
        cols[2].parse().expect("target count"),
        cols[5].to_owned(),
    )
}

fn serve_postgres(dir: &TestDir, schema: &TestSchema) -> Server {
    Server::start(
        dir,
        ServerOptions {
            extra_args: vec![
                "--database-url".into(),
                schema.url().to_owned(),
                "--database-schema".into(),
                schema.name().to_owned(),
                "--database-pool-size".into(),
                "4".into(),
            ],
            ..Default::default()
        },
    )
}

async fn list(server: &Server, channel: &str) -> Value {
    call_ok(
        &http_client(),
        &server.base_url(),
        "query",
        "testing/messages:list",
        json!({"channel": channel}),
    )
    .await
}

async fn counter(server: &Server, name: &str) -> Value {
    call_ok(
        &http_client(),
        &server.base_url(),
        "query",
        "testing/counter:get",
        json!({"name": name}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_deployment_migrates_to_postgres_and_serves_the_same_data() {
    let schema = TestSchema::new();
    // Reachability (skip or fail per policy) before any work.
    drop(schema.connect().await);

    // 1. A SQLite deployment with data written through HTTP.
    let source = TestDir::new();
    let mut sqlite = Server::start(&source, ServerOptions::default());
    let client = http_client();
    let (general, random, name) = (unique("general"), unique("random"), unique("views"));
    for i in 0..25 {
        let channel = if i % 5 == 0 { &random } else { &general };
        call_ok(
            &client,
            &sqlite.base_url(),
            "mutation",
            "testing/messages:send",
            json!({"channel": channel, "body": format!("message {i}")}),
        )
        .await;
    }
    for _ in 0..3 {
        call_ok(
            &client,
            &sqlite.base_url(),
            "mutation",
            "testing/counter:increment",
            json!({"name": name}),
        )
        .await;
    }
    let general_before = list(&sqlite, &general).await;
    let random_before = list(&sqlite, &random).await;
    assert_eq!(general_before.as_array().map(Vec::len), Some(20));
    assert_eq!(random_before.as_array().map(Vec::len), Some(5));

    // 2. The data dir of a running server is refused (its lock).
    let busy = migrate(&source.data_dir(), &schema, &[]);
    let (_, stderr) = text(&busy);
    assert!(
        !busy.status.success(),
        "migrating a live data dir succeeded"
    );
    assert!(
        stderr.contains("must not be in use") && stderr.contains("connvo.lock"),
        "unclear error for a live data dir:\n{stderr}"
    );

    // 3. Stop it, migrate, check the report.
    sqlite.sigterm();
    assert!(
        sqlite.wait_exit(Duration::from_secs(15)).is_some(),
        "the SQLite server did not stop on SIGTERM"
    );
    let out = migrate(&source.data_dir(), &schema, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "migrate failed:\n{stdout}\n{stderr}");
    eprintln!("{stdout}");
    assert_eq!(report_row(&stdout, "test_messages"), (25, 25, "ok".into()));
    assert_eq!(report_row(&stdout, "test_counters"), (1, 1, "ok".into()));
    assert!(!stdout.contains("MISMATCH"), "{stdout}");
    assert!(
        stdout.contains("every count and checksum matches"),
        "{stdout}"
    );

    // 4. A PostgreSQL node on the target serves the same data; the
    //    index-backed queries (by_channel, by_name) work after the rebuild.
    let node_dir = TestDir::new();
    let node = serve_postgres(&node_dir, &schema);
    assert_eq!(list(&node, &general).await, general_before);
    assert_eq!(list(&node, &random).await, random_before);
    assert_eq!(counter(&node, &name).await.as_f64(), Some(3.0));
    let next = call_ok(
        &client,
        &node.base_url(),
        "mutation",
        "testing/counter:increment",
        json!({"name": name}),
    )
    .await;
    assert_eq!(next.as_f64(), Some(4.0), "writes continue on migrated data");
    node.sigterm();
    let mut node = node;
    assert!(node.wait_exit(Duration::from_secs(15)).is_some());

    // 5. The target is no longer empty: refused without --force.
    let again = migrate(&source.data_dir(), &schema, &[]);
    let (stdout, stderr) = text(&again);
    assert!(
        !again.status.success(),
        "a second migrate into a non-empty target succeeded:\n{stdout}"
    );
    assert!(
        stderr.contains("not empty") && stderr.contains("--force"),
        "unclear refusal:\n{stderr}"
    );

    // 6. --force replaces the target with the source again (the counter is
    //    back to 3, so the rebuilt by_name index points at the copied doc).
    let forced = migrate(&source.data_dir(), &schema, &["--force"]);
    let (stdout, stderr) = text(&forced);
    assert!(
        forced.status.success(),
        "migrate --force failed:\n{stdout}\n{stderr}"
    );
    assert_eq!(report_row(&stdout, "test_messages"), (25, 25, "ok".into()));
    assert_eq!(report_row(&stdout, "test_counters"), (1, 1, "ok".into()));
    let node = serve_postgres(&node_dir, &schema);
    assert_eq!(list(&node, &general).await, general_before);
    assert_eq!(counter(&node, &name).await.as_f64(), Some(3.0));
}
