//! `connvo-bench`: performance measurements of Connvo Server.
//!
//! Subcommands:
//!
//! * `connvo-bench engine` — microbenchmarks of the storage engine through
//!   the real `Database`, `Runtime` and SQLite store, without the network
//!   (see the [`engine`] module for what is measured and how);
//! * a WebSocket load generator (`connvo-bench load …`) will join it as a
//!   second [`Command`] variant.
//!
//! Shared result handling (medians over runs, table / JSON / Markdown
//! output) lives in [`report`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod engine;
mod report;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Engine(args) => engine::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("connvo-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
