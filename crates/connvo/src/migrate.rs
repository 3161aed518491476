//! `connvo migrate --from sqlite://PATH --to postgres://URL`: copies a
//! single-node SQLite deployment into a PostgreSQL schema.
//!
//! * **What is copied.** Every document of every table of [`model::schema()`]
//!   (domain, test and system tables), paged through
//!   [`Snapshot::scan_table`](persistence::Snapshot::scan_table) of one
//!   source snapshot, written to the target in batches of [`BATCH`] documents,
//!   one [`CommitRecord`] per batch with increasing timestamps above both the
//!   target's and the source's newest commit. Records carry document writes
//!   only (an empty write set in the commit log): index entries are not
//!   copied, because the engine rebuilds every index whose stored metadata is
//!   missing or different when `connvo serve` opens the target.
//! * **Verification.** Afterwards, per table, the document count and a SHA-256
//!   over the `(id, json)` pairs in id order are read back from a fresh target
//!   snapshot and compared with the source; a per-table report is printed and
//!   any mismatch makes the command fail (non-zero exit).
//! * **Non-empty targets.** Refused (any document in a schema table, or a
//!   commit timestamp above 0) unless `--force`. With `--force` the target is
//!   cleared *through the persistence trait*: every document of every schema
//!   table is deleted, every stored index is cleared and its metadata is
//!   marked stale so the engine rebuilds it on the next open. Rows the trait
//!   cannot enumerate (documents of tables that are not in the schema, the
//!   old commit log) are left as they are; they are invisible to the engine.
//! * **The source must not be in use.** Opening the SQLite data dir takes its
//!   lock; a running `connvo serve` on it makes the command fail with the lock
//!   error. Stop the server first.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use persistence::{
    CommitRecord, DocumentWrite, IndexMeta, Persistence, Snapshot, TableNumber, Timestamp,
};
use persistence_postgres::{PostgresOptions, PostgresPersistence};
use persistence_sqlite::{SqliteOptions, SqlitePersistence};
use sha2::{Digest, Sha256};

/// Documents per target commit (and per source page).
const BATCH: usize = 500;

/// The signature stored for indexes cleared by `--force`: never a real one,
/// so the engine rebuilds them on open.
const STALE_SIGNATURE: &str = "stale: cleared by connvo migrate --force";

/// `connvo migrate` arguments.
#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// The source: `sqlite://PATH` where PATH is the data dir of a stopped
    /// `connvo serve` (the directory holding `connvo.db`).
    #[arg(long)]
    from: String,
    /// The target: a PostgreSQL URL (`postgres://user:pass@host:port/db`).
    #[arg(long, hide_env_values = true)]
    to: String,
    /// The PostgreSQL schema to fill (created if missing).
    #[arg(long, default_value = "connvo")]
    to_schema: String,
    /// PEM file of CA certificates: requires TLS and verifies the server.
    #[arg(long)]
    to_tls_ca: Option<PathBuf>,
    /// Clear a non-empty target first (its documents are deleted).
    #[arg(long)]
    force: bool,
}

/// Count and checksum of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TableSummary {
    count: u64,
    sha256: String,
}

/// Runs the migration; `Ok(false)` when verification found a mismatch.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<bool> {
    let Some(path) = args.from.strip_prefix("sqlite://") else {
        bail!("--from must be sqlite://PATH (the data dir of a stopped server)");
    };
    if !(args.to.starts_with("postgres://") || args.to.starts_with("postgresql://")) {
        bail!("--to must be a postgres:// URL");
    }
    let dir = PathBuf::from(path);
    let db_file = dir.join("connvo.db");
    if !db_file.is_file() {
        bail!(
            "{} does not exist: --from must name the data dir of a Connvo SQLite deployment",
            db_file.display()
        );
    }
    let dir_for_open = dir.clone();
    let source: Arc<dyn Persistence> = tokio::task::spawn_blocking(move || {
        SqlitePersistence::open(&dir_for_open, SqliteOptions::default())
    })
    .await?
    .map_err(|e| anyhow::anyhow!("{e}"))
    .with_context(|| {
        format!(
            "opening the source data dir {} (it must not be in use: stop `connvo serve` on it first)",
            dir.display()
        )
    })?;
    let target: Arc<dyn Persistence> = PostgresPersistence::connect(
        &args.to,
        PostgresOptions {
            schema: args.to_schema.clone(),
            tls_ca_file: args.to_tls_ca.clone(),
            read_pool_size: 2,
            ..PostgresOptions::default()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
    .with_context(|| {
        format!(
            "connecting to the target PostgreSQL ({}, schema {:?})",
            crate::redact(&args.to),
            args.to_schema
        )
    })?;
    let schema = model::schema().map_err(|e| anyhow::anyhow!("schema: {e}"))?;
    let tables: Vec<(String, TableNumber)> = schema
        .tables()
        .map(|t| (t.name.clone(), t.number))
        .collect();

    // Refuse (or clear) a non-empty target.
    let target_latest = target.latest_ts().await.map_err(anyhow_err)?;
    let target_snapshot = target.snapshot().await.map_err(anyhow_err)?;
    let mut occupied = Vec::new();
    for (name, number) in &tables {
        if !target_snapshot
            .scan_table(*number, None, 1)
            .await
            .map_err(anyhow_err)?
            .is_empty()
        {
            occupied.push(name.clone());
        }
    }
    drop(target_snapshot);
    if target_latest > Timestamp::ZERO || !occupied.is_empty() {
        if !args.force {
            bail!(
                "the target schema {:?} is not empty (latest commit ts {}, documents in: {}); \
                 refusing to overwrite it without --force",
                args.to_schema,
                target_latest.0,
                if occupied.is_empty() {
                    "no schema table".to_owned()
                } else {
                    occupied.join(", ")
                }
            );
        }
        let deleted = clear_target(&target, &tables).await?;
        eprintln!(
            "--force: cleared the target schema {:?} ({deleted} documents deleted, indexes marked for rebuild)",
            args.to_schema
        );
    }

    // Copy.
    let snapshot = source.snapshot().await.map_err(anyhow_err)?;
    let mut next_ts = Timestamp(
        target
            .latest_ts()
            .await
            .map_err(anyhow_err)?
            .0
            .max(snapshot.ts().0),
    );
    let log = database::readset::WriteSet::default().encode();
    let mut copied = 0u64;
    for (name, number) in &tables {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let docs = snapshot
                .scan_table(*number, after.as_deref(), BATCH)
                .await
                .map_err(anyhow_err)
                .with_context(|| format!("reading table {name} from the source"))?;
            let Some(last) = docs.last() else { break };
            after = Some(last.id.clone());
            let mut wtx = target.begin_write().await.map_err(anyhow_err)?;
            let latest = wtx.latest_ts().await.map_err(anyhow_err)?;
            next_ts = Timestamp(next_ts.0.max(latest.0) + 1);
            let record = CommitRecord {
                ts: next_ts,
                documents: docs
                    .iter()
                    .map(|d| DocumentWrite {
                        id: d.id.clone(),
                        table: d.table,
                        json: Some(d.json.clone()),
                    })
                    .collect(),
                index_writes: Vec::new(),
                log: log.clone(),
            };
            wtx.write(&record)
                .await
                .map_err(anyhow_err)
                .with_context(|| format!("writing table {name} to the target"))?;
            wtx.commit().await.map_err(anyhow_err)?;
            copied += docs.len() as u64;
        }
    }
    eprintln!("copied {copied} documents; verifying");

    // Verify.
    let target_snapshot = target.snapshot().await.map_err(anyhow_err)?;
    let checks = verify(snapshot.as_ref(), target_snapshot.as_ref(), &tables).await?;
    println!(
        "{:<32} {:>10} {:>10}  {:<16} {:<16}  result",
        "table", "source", "target", "source sha256", "target sha256"
    );
    for check in &checks {
        println!(
            "{:<32} {:>10} {:>10}  {:<16} {:<16}  {}",
            check.table,
            check.source.count,
            check.target.count,
            &check.source.sha256[..16],
            &check.target.sha256[..16],
            if check.matches() { "ok" } else { "MISMATCH" }
        );
    }
    let ok = checks.iter().all(TableCheck::matches);
    if ok {
        println!(
            "migrated {copied} documents in {} tables: every count and checksum matches",
            tables.len()
        );
    } else {
        println!("MISMATCH: the target differs from the source (see the table above)");
    }
    Ok(ok)
}

/// One table's verification: its summaries on both sides.
#[derive(Debug, Clone)]
struct TableCheck {
    table: String,
    source: TableSummary,
    target: TableSummary,
}

impl TableCheck {
    fn matches(&self) -> bool {
        self.source == self.target
    }
}

/// Summarizes every table on both sides.
async fn verify(
    source: &dyn Snapshot,
    target: &dyn Snapshot,
    tables: &[(String, TableNumber)],
) -> anyhow::Result<Vec<TableCheck>> {
    let mut checks = Vec::with_capacity(tables.len());
    for (name, number) in tables {
        checks.push(TableCheck {
            table: name.clone(),
            source: summarize(source, *number).await?,
            target: summarize(target, *number).await?,
        });
    }
    Ok(checks)
}

fn anyhow_err(e: persistence::Error) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Count and SHA-256 of one table's `(id, json)` pairs in id order (each
/// part length-prefixed, so the encoding is unambiguous).
async fn summarize(snapshot: &dyn Snapshot, table: TableNumber) -> anyhow::Result<TableSummary> {
    let mut hasher = Sha256::new();
    let mut count = 0u64;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let docs = snapshot
            .scan_table(table, after.as_deref(), BATCH)
            .await
            .map_err(anyhow_err)?;
        let Some(last) = docs.last() else { break };
        after = Some(last.id.clone());
        for d in &docs {
            hasher.update((d.id.len() as u64).to_be_bytes());
            hasher.update(&d.id);
            hasher.update((d.json.len() as u64).to_be_bytes());
            hasher.update(d.json.as_bytes());
            count += 1;
        }
    }
    Ok(TableSummary {
        count,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// `--force`: deletes every document of every schema table, clears every
/// stored index and marks it stale (so `connvo serve` rebuilds it).
async fn clear_target(
    target: &Arc<dyn Persistence>,
    tables: &[(String, TableNumber)],
) -> anyhow::Result<u64> {
    let log = database::readset::WriteSet::default().encode();
    let mut deleted = 0u64;
    for (_, number) in tables {
        loop {
            // Always from the start: the previous batch is gone.
            let snapshot = target.snapshot().await.map_err(anyhow_err)?;
            let docs = snapshot
                .scan_table(*number, None, BATCH)
                .await
                .map_err(anyhow_err)?;
            drop(snapshot);
            if docs.is_empty() {
                break;
            }
            let mut wtx = target.begin_write().await.map_err(anyhow_err)?;
            let ts = wtx.latest_ts().await.map_err(anyhow_err)?.succ();
            let record = CommitRecord {
                ts,
                documents: docs
                    .iter()
                    .map(|d| DocumentWrite {
                        id: d.id.clone(),
                        table: d.table,
                        json: None,
                    })
                    .collect(),
                index_writes: Vec::new(),
                log: log.clone(),
            };
            wtx.write(&record).await.map_err(anyhow_err)?;
            wtx.commit().await.map_err(anyhow_err)?;
            deleted += docs.len() as u64;
        }
    }
    let metas = target.index_metadata().await.map_err(anyhow_err)?;
    if !metas.is_empty() {
        let mut wtx = target.begin_write().await.map_err(anyhow_err)?;
        for meta in metas {
            wtx.clear_index(meta.index).await.map_err(anyhow_err)?;
            wtx.put_index_meta(&IndexMeta {
                signature: STALE_SIGNATURE.to_owned(),
                ..meta
            })
            .await
            .map_err(anyhow_err)?;
        }
        wtx.commit().await.map_err(anyhow_err)?;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &tempfile::TempDir) -> Arc<dyn Persistence> {
        SqlitePersistence::open(dir.path(), SqliteOptions::default()).expect("open sqlite")
    }

    async fn put(p: &dyn Persistence, ts: u64, docs: &[(&[u8], u32, &str)]) {
        let mut wtx = p.begin_write().await.expect("begin");
        wtx.write(&CommitRecord {
            ts: Timestamp(ts),
            documents: docs
                .iter()
                .map(|(id, table, json)| DocumentWrite {
                    id: id.to_vec(),
                    table: TableNumber(*table),
                    json: Some((*json).to_owned()),
                })
                .collect(),
            index_writes: Vec::new(),
            log: Vec::new(),
        })
        .await
        .expect("write");
        wtx.commit().await.expect("commit");
    }

    /// Verification catches a changed document, a missing one and an extra
    /// one, table by table, and passes identical tables.
    #[tokio::test]
    async fn verification_reports_every_kind_of_mismatch() {
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (store(&a_dir), store(&b_dir));
        let same: &[(&[u8], u32, &str)] = &[(b"s1", 1, "{\"x\":1}"), (b"s2", 1, "{\"x\":2}")];
        put(&*a, 1, same).await;
        put(&*b, 1, same).await;
        // Table 2: one document differs in content.
        put(&*a, 2, &[(b"c1", 2, "{\"v\":\"before\"}")]).await;
        put(&*b, 2, &[(b"c1", 2, "{\"v\":\"after\"}")]).await;
        // Table 3: the target lacks a document; table 4: it has an extra one.
        put(&*a, 3, &[(b"m1", 3, "{}"), (b"m2", 3, "{}")]).await;
        put(&*b, 3, &[(b"m1", 3, "{}")]).await;
        put(&*b, 4, &[(b"e1", 4, "{}")]).await;
        let tables: Vec<(String, TableNumber)> =
            (1..=4).map(|n| (format!("t{n}"), TableNumber(n))).collect();
        let (sa, sb) = (a.snapshot().await.unwrap(), b.snapshot().await.unwrap());
        let checks = verify(sa.as_ref(), sb.as_ref(), &tables).await.unwrap();
        let result: Vec<(&str, bool, u64, u64)> = checks
            .iter()
            .map(|c| {
                (
                    c.table.as_str(),
                    c.matches(),
                    c.source.count,
                    c.target.count,
                )
            })
            .collect();
        assert_eq!(
            result,
            vec![
                ("t1", true, 2, 2),
                ("t2", false, 1, 1),
                ("t3", false, 2, 1),
                ("t4", false, 0, 1),
            ]
        );
        assert_ne!(checks[1].source.sha256, checks[1].target.sha256);
    }
}
