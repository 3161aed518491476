//! `connvo docs validate` and `connvo openapi`: the API documentation
//! pipeline of the `docs` crate over the registry `connvo serve` would build.

use std::path::PathBuf;

use anyhow::Context as _;
use runtime::Registry;

/// `connvo docs …`.
#[derive(clap::Subcommand, Debug)]
pub enum DocsCommand {
    /// Check every public function's doc comment against the documentation
    /// standard; print each finding as `path: severity: message` and exit 1
    /// on any error.
    Validate(ValidateArgs),
    /// Print valid, deterministic document ids of a table for doc examples.
    ExampleId(ExampleIdArgs),
}

/// Arguments of `connvo docs example-id`.
#[derive(clap::Args, Debug)]
pub struct ExampleIdArgs {
    /// The table the ids belong to.
    table: String,
    /// How many ids (one per line).
    #[arg(long, default_value_t = 3)]
    count: u64,
}

/// Arguments of `connvo docs validate`.
#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// Also write the findings as a JSON report to this file.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Include the `testing/*` functions (as `connvo serve --test-functions`).
    #[arg(long)]
    test_functions: bool,
}

/// Arguments of `connvo openapi`.
#[derive(clap::Args, Debug)]
pub struct OpenApiArgs {
    /// Write the document to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Include the `testing/*` functions (as `connvo serve --test-functions`).
    #[arg(long)]
    test_functions: bool,
    /// The server URL to put in `servers`.
    #[arg(long, default_value = "http://127.0.0.1:3210")]
    server_url: String,
}

fn registry(test_functions: bool) -> Registry {
    let mut registry = Registry::new();
    model::register(&mut registry, model::ModelOptions { test_functions });
    registry
}

/// Runs `connvo docs …`; returns the process exit code.
pub fn docs(command: DocsCommand) -> anyhow::Result<i32> {
    match command {
        DocsCommand::Validate(args) => {
            let report = docs::Report::new(&registry(args.test_functions));
            for finding in &report.findings {
                println!("{finding}");
            }
            println!(
                "docs validate: {} public functions, {} errors, {} warnings",
                report.functions, report.errors, report.warnings
            );
            if let Some(file) = &args.file {
                let json = serde_json::to_string_pretty(&report)?;
                std::fs::write(file, json + "\n")
                    .with_context(|| format!("writing {}", file.display()))?;
            }
            Ok(if report.is_ok() { 0 } else { 1 })
        }
        DocsCommand::ExampleId(args) => {
            for n in 1..=args.count {
                println!("{}", docs::example_id(&args.table, n));
            }
            Ok(0)
        }
    }
}

/// Runs `connvo openapi`.
pub fn openapi(args: OpenApiArgs) -> anyhow::Result<()> {
    let options = docs::OpenApiOptions {
        servers: vec![args.server_url],
        ..Default::default()
    };
    let spec = docs::openapi(&registry(args.test_functions), &options);
    let text = serde_json::to_string_pretty(&spec)? + "\n";
    match &args.out {
        Some(out) => {
            std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?
        }
        None => print!("{text}"),
    }
    Ok(())
}
