//! Results of a benchmark session and their three renderings: a plain-text
//! table for the terminal, machine-readable JSON and a Markdown table.
//!
//! Every benchmark is repeated for several *runs*; each run yields one value
//! per [`Figure`] (say, "p50 latency of this run"). A figure is summarised by
//! the **median** of its per-run values, with the minimum and maximum shown
//! to make the spread visible. Per-operation samples inside one run are
//! reduced with [`Samples`] (nearest-rank percentiles).
//!
//! This module is independent of what is measured so that other subcommands
//! (the planned WebSocket load generator) can reuse it.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

/// Per-operation latency samples of one run.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    nanos: Vec<u64>,
}

impl Samples {
    /// Empty samples with room for `n` operations.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            nanos: Vec::with_capacity(n),
        }
    }

    /// Records one operation's latency.
    pub fn push(&mut self, d: Duration) {
        self.nanos
            .push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds every sample of `other`.
    pub fn extend(&mut self, other: Samples) {
        self.nanos.extend(other.nanos);
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.nanos.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.nanos.is_empty()
    }

    /// The nearest-rank `p`-th percentile (0 < p <= 100) in microseconds,
    /// or 0 without samples.
    pub fn percentile_us(&mut self, p: f64) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        self.nanos.sort_unstable();
        let n = self.nanos.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        let idx = rank.clamp(1, n) - 1;
        self.nanos[idx] as f64 / 1_000.0
    }

    /// The mean in microseconds, or 0 without samples.
    pub fn mean_us(&self) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        self.nanos.iter().map(|&n| n as f64).sum::<f64>() / self.nanos.len() as f64 / 1_000.0
    }
}

/// Median of a non-empty set of values (mean of the two middle ones for an
/// even count); 0 for an empty set.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Operations per second for `ops` operations that took `elapsed`.
pub fn per_second(ops: usize, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 { 0.0 } else { ops as f64 / secs }
}

/// One measured quantity of a benchmark, with its value in every run.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Machine name (`snake_case`), unique within its benchmark.
    pub name: &'static str,
    /// Human label for tables.
    pub label: &'static str,
    /// Unit (`us`, `ms`, `ops/s`, `commits/s`, `commits`, …).
    pub unit: &'static str,
    /// The value measured in each run, in run order.
    pub runs: Vec<f64>,
}

impl Figure {
    /// A figure with no runs yet.
    pub fn new(name: &'static str, label: &'static str, unit: &'static str) -> Self {
        Self {
            name,
            label,
            unit,
            runs: Vec::new(),
        }
    }

    /// The median over runs.
    pub fn median(&self) -> f64 {
        median(&self.runs)
    }

    /// The smallest run value.
    pub fn min(&self) -> f64 {
        self.runs.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// The largest run value.
    pub fn max(&self) -> f64 {
        self.runs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "label": self.label,
            "unit": self.unit,
            "median": round(self.median()),
            "min": round(self.min()),
            "max": round(self.max()),
            "runs": self.runs.iter().map(|v| round(*v)).collect::<Vec<_>>(),
        })
    }
}

/// The results of one benchmark.
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// Machine name (`snake_case`).
    pub name: &'static str,
    /// Human title.
    pub title: &'static str,
    /// What one operation is.
    pub description: String,
    /// Operations per run.
    pub iterations: usize,
    /// Its figures; the first is the headline figure.
    pub figures: Vec<Figure>,
    /// Correctness checks made while measuring (name → value).
    pub checks: serde_json::Map<String, Value>,
}

impl BenchResult {
    /// A result with the given figures and no checks.
    pub fn new(
        name: &'static str,
        title: &'static str,
        description: String,
        iterations: usize,
        figures: Vec<Figure>,
    ) -> Self {
        Self {
            name,
            title,
            description,
            iterations,
            figures,
            checks: serde_json::Map::new(),
        }
    }

    /// The figure with this name.
    pub fn figure(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }

    /// The JSON object of this benchmark: the headline figure's `unit`,
    /// `median`, `min` and `max` at top level, then every figure.
    pub fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        out.insert("name".into(), json!(self.name));
        out.insert("title".into(), json!(self.title));
        out.insert("description".into(), json!(self.description));
        out.insert("iterations".into(), json!(self.iterations));
        if let Some(head) = self.figures.first() {
            out.insert("headline".into(), json!(head.name));
            out.insert("unit".into(), json!(head.unit));
            out.insert("median".into(), json!(round(head.median())));
            out.insert("min".into(), json!(round(head.min())));
            out.insert("max".into(), json!(round(head.max())));
        }
        out.insert(
            "figures".into(),
            Value::Array(self.figures.iter().map(Figure::to_json).collect()),
        );
        if !self.checks.is_empty() {
            out.insert("checks".into(), Value::Object(self.checks.clone()));
        }
        Value::Object(out)
    }
}

/// A whole session: configuration plus every benchmark's results.
#[derive(Debug, Clone)]
pub struct Report {
    /// The subcommand (`engine`).
    pub command: &'static str,
    /// The configuration, for the record.
    pub config: Value,
    /// Results in execution order.
    pub benchmarks: Vec<BenchResult>,
    /// Derived observations, one sentence each.
    pub notes: Vec<String>,
    /// Total wall-clock time of the session.
    pub elapsed: Duration,
}

impl Report {
    /// The machine-readable form.
    pub fn to_json(&self) -> Value {
        json!({
            "tool": "connvo-bench",
            "command": self.command,
            "version": env!("CARGO_PKG_VERSION"),
            "config": self.config,
            "elapsed_seconds": round(self.elapsed.as_secs_f64()),
            "benchmarks": self.benchmarks.iter().map(BenchResult::to_json).collect::<Vec<_>>(),
            "notes": self.notes,
        })
    }

    fn rows(&self) -> Vec<[String; 6]> {
        let mut rows = Vec::new();
        for b in &self.benchmarks {
            for (i, f) in b.figures.iter().enumerate() {
                rows.push([
                    if i == 0 {
                        b.title.to_owned()
                    } else {
                        String::new()
                    },
                    f.label.to_owned(),
                    fmt_num(f.median()),
                    fmt_num(f.min()),
                    fmt_num(f.max()),
                    f.unit.to_owned(),
                ]);
            }
        }
        rows
    }

    /// A fixed-width table for the terminal.
    pub fn to_table(&self) -> String {
        let header = ["benchmark", "figure", "median", "min", "max", "unit"];
        let rows = self.rows();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: [&str; 6]| {
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                let pad = w - cell.chars().count();
                // Numbers right-aligned, text left-aligned.
                if (2..=4).contains(&i) {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    out.push_str(&" ".repeat(pad));
                }
                out.push_str(if i + 1 == cells.len() { "\n" } else { "  " });
            }
        };
        line(&mut out, header);
        let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for row in &rows {
            line(&mut out, row.each_ref().map(String::as_str));
        }
        for b in &self.benchmarks {
            for (name, value) in &b.checks {
                let _ = writeln!(out, "check {}.{name} = {value}", b.name);
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }

    /// A Markdown document: configuration, then one table of medians.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# connvo-bench {}\n", self.command);
        if let Value::Object(config) = &self.config {
            for (k, v) in config {
                let _ = writeln!(out, "- **{k}**: {v}");
            }
            out.push('\n');
        }
        out.push_str("| benchmark | figure | median | min | max | unit |\n");
        out.push_str("|---|---|---:|---:|---:|---|\n");
        for row in self.rows() {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        let checks: Vec<String> = self
            .benchmarks
            .iter()
            .flat_map(|b| {
                b.checks
                    .iter()
                    .map(move |(k, v)| format!("- `{}.{k}` = {v}", b.name))
            })
            .collect();
        if !checks.is_empty() {
            out.push_str("\nChecks:\n\n");
            for c in checks {
                let _ = writeln!(out, "{c}");
            }
        }
        if !self.notes.is_empty() {
            out.push_str("\nNotes:\n\n");
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        let _ = writeln!(
            out,
            "\nMedian of {} runs (after a warm-up run); total time {:.1} s.",
            self.config.get("runs").and_then(Value::as_u64).unwrap_or(0),
            self.elapsed.as_secs_f64()
        );
        out
    }
}

/// Rounds to 3 decimals for output (keeps JSON readable).
fn round(v: f64) -> f64 {
    if v.is_finite() {
        (v * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

/// Formats a number with precision adapted to its magnitude.
fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "-".to_owned()
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Samples::default();
        for us in 1..=100u64 {
            s.push(Duration::from_micros(us));
        }
        assert_eq!(s.percentile_us(50.0), 50.0);
        assert_eq!(s.percentile_us(99.0), 99.0);
        assert_eq!(s.percentile_us(100.0), 100.0);
        assert!((s.mean_us() - 50.5).abs() < 1e-9);
    }

    #[test]
    fn renders_every_format() {
        let mut f = Figure::new("ops", "throughput", "ops/s");
        f.runs = vec![10.0, 30.0, 20.0];
        let mut b = BenchResult::new("x", "X", "one op".into(), 5, vec![f]);
        b.checks.insert("ok".into(), json!(true));
        let r = Report {
            command: "engine",
            config: json!({"runs": 3}),
            benchmarks: vec![b],
            notes: vec!["a note".into()],
            elapsed: Duration::from_secs(1),
        };
        let j = r.to_json();
        assert_eq!(j["benchmarks"][0]["median"], json!(20.0));
        assert_eq!(j["benchmarks"][0]["min"], json!(10.0));
        assert_eq!(j["benchmarks"][0]["max"], json!(30.0));
        assert!(r.to_table().contains("throughput"));
        assert!(
            r.to_markdown()
                .contains("| X | throughput | 20.00 | 10.00 | 30.00 | ops/s |")
        );
    }
}
