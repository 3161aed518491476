//! Shared helpers for the engine's integration tests.
#![allow(dead_code, missing_docs)]

use std::sync::Arc;

use database::{Database, DatabaseOptions, Schema, SeededIds, SystemClock, TableDef};
use persistence_sqlite::{SqliteOptions, SqlitePersistence};
use values::v;

pub fn schema() -> Arc<Schema> {
    Arc::new(
        Schema::builder()
            .table(
                TableDef::new("items")
                    .field("group", v::string())
                    .field("n", v::number())
                    .field("tags", v::optional(v::array(v::string())))
                    .index("by_group_n", &["group", "n"]),
            )
            .table(
                TableDef::new("counters")
                    .field("name", v::string())
                    .field("value", v::number())
                    .field("log", v::array(v::number())),
            )
            .build()
            .expect("schema"),
    )
}

pub async fn open(dir: &std::path::Path) -> Database {
    open_with(dir, DatabaseOptions::default()).await
}

pub async fn open_with(dir: &std::path::Path, options: DatabaseOptions) -> Database {
    let p = SqlitePersistence::open(
        dir,
        SqliteOptions {
            synchronous_full: false,
            ..Default::default()
        },
    )
    .expect("open sqlite");
    Database::open(
        p,
        schema(),
        Arc::new(SystemClock),
        SeededIds::new(7),
        options,
    )
    .await
    .expect("open database")
}

/// The `n` of every `items` row of `group` (index `by_group_n`) in `tx`, in `order`.
pub async fn scan_group_ns(
    tx: &mut database::Transaction,
    group: &str,
    order: database::Order,
) -> Vec<f64> {
    let table = Arc::clone(tx.schema().table("items").unwrap());
    let index = table.index("by_group_n").unwrap().clone();
    let (range, bucket) = database::IndexRange::all()
        .eq("group", group)
        .compile(&index)
        .unwrap();
    let res = tx
        .scan(&table, &index, &range, bucket, order, None, 1000)
        .await
        .unwrap();
    res.rows
        .iter()
        .map(|(_, d)| d.field("n").and_then(values::Value::as_f64).unwrap())
        .collect()
}
