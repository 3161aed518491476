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
        DatabaseOptions::default(),
    )
    .await
    .expect("open database")
}
