//! `connvo-bench`: performance measurements of Connvo Server.
//!
//! Subcommands:
//!
//! * `connvo-bench engine` — microbenchmarks of the storage engine through
//!   the real `Database`, `Runtime` and SQLite store, without the network
//!   (see the [`engine`] module for what is measured and how);
//! * `connvo-bench load` — the WebSocket load generator and SLO benchmark:
//!   meetings whose participants are real sync connections, delivery /
//!   mutation / query latency, throughput, server CPU and RSS, and a check
//!   that no update was lost, duplicated or reordered (see [`load`]).
//!
//! Shared result handling (medians over runs, table / JSON / Markdown
//! output) lives in [`report`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod engine;
mod load;
mod report;

/// mimalloc, as in the server: the load generator parses every frame its
/// thousands of connections read into short-lived values, and with glibc
/// malloc allocation was ~13% of its CPU, taken from the server it measures
/// on the same cores.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchmarks for Connvo Server.
#[derive(Debug, Parser)]
#[command(name = "connvo-bench", version, about, long_about = None)]
struct Cli {
    /// What to run.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Engine microbenchmarks against a real SQLite store: point reads,
    /// indexed range reads, insert mutations (sequential and concurrent) and
    /// the invalidation of 1,000 subscriptions by one commit.
    Engine(engine::EngineArgs),
    /// WebSocket load test against a running (`--url`) or spawned
    /// (`--spawn`) server; exits non-zero if any update was lost,
    /// duplicated, reordered or failed.
    Load(Box<load::LoadArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Engine(args) => engine::run(args),
        Command::Load(args) => match load::run(*args) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(2),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("connvo-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
