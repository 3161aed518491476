//! Command-line options of `connvo-bench load`.

use std::path::PathBuf;

use clap::Args;

/// `connvo-bench load`: drive a running (or spawned) server with meetings
/// whose participants are real sync connections, and measure delivery.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Deployment URL(s) of running server(s), comma-separated; connections
    /// are spread round-robin over them (a mutation through one node must
    /// reach subscribers on the others). Needs --data-dir to mint dev tokens.
    #[arg(long, value_delimiter = ',', conflicts_with = "spawn")]
    pub url: Vec<String>,
    /// Start `connvo serve` on a fresh temporary data dir (dev auth on).
    #[arg(long)]
    pub spawn: bool,
    /// With --spawn: start this many nodes (needs --database-url when > 1).
    #[arg(long, default_value_t = 1, requires = "spawn")]
    pub spawn_nodes: usize,
    /// With --spawn: run the nodes on this PostgreSQL instead of SQLite.
    #[arg(long, requires = "spawn")]
    pub database_url: Option<String>,
    /// With --spawn: the `connvo` binary (default: next to connvo-bench).
    #[arg(long)]
    pub connvo_bin: Option<PathBuf>,
    /// With --spawn: SQLite durability passed to `connvo serve --sqlite-sync`
    /// (`pipelined`, the server's default, `full` or `normal`).
    #[arg(long, default_value = "pipelined")]
    pub sqlite_sync: String,
    /// With --url: the server's data dir, whose dev key signs the tokens
    /// (the server must trust dev tokens).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// With --url: pid(s) of the server process(es), comma-separated, to
    /// sample CPU and RSS from /proc (same machine only).
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Number of meetings.
    #[arg(long, default_value_t = 10)]
    pub meetings: usize,
    /// Participants (= sync connections) per meeting; the first is the host
    /// and the writer of every update.
    #[arg(long, default_value_t = 3)]
    pub participants: usize,
    /// Transcript updates per second per meeting
    /// (`transcripts/ingestion:ingestTranscriptChunk`).
    #[arg(long, default_value_t = 0.0)]
    pub transcript_rate: f64,
    /// Chunks per transcript update: above 1, each update is one
    /// `transcripts/ingestion:ingestTranscriptBatch` mutation carrying this
    /// many chunks (1–200), so `--transcript-rate` counts batches and the
    /// durable transcript write rate is rate × batch × meetings. Every
    /// chunk is still tracked (and checked for loss and order) on its own.
    /// The server allows a user 5 batches/s sustained (300 per minute).
    #[arg(long, default_value_t = 1)]
    pub transcript_batch: usize,
    /// Note operations per second per meeting
    /// (`notes/mutations:applyNoteOperation`).
    #[arg(long, default_value_t = 0.0)]
    pub note_rate: f64,
    /// Chat messages per second per meeting (`messaging/mutations:sendMessage`).
    #[arg(long, default_value_t = 0.0)]
    pub chat_rate: f64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Warm-up seconds: load runs, but nothing sent then is measured.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Approximate text size of each update, in bytes.
    #[arg(long, default_value_t = 120)]
    pub payload_bytes: usize,
    /// `limit` of each subscriber's `listTranscriptChunks` window; the
    /// cursor moves (Remove + Add) once the window is half full, so every
    /// live result holds between 0 and this many chunks.
    #[arg(long, default_value_t = 20)]
    pub transcript_window: usize,
    /// Seconds to wait after the last send for acknowledgements and
    /// deliveries before counting what is missing as lost.
    #[arg(long, default_value_t = 15.0)]
    pub drain_timeout: f64,
    /// Concurrent setup operations (connects, user and meeting creation).
    #[arg(long, default_value_t = 128)]
    pub setup_concurrency: usize,
    /// Also run the raw baselines (SQLite insert loop, tokio WebSocket
    /// broadcast) and report our figures as multiples of theirs.
    #[arg(long)]
    pub baseline: bool,
    /// Write the results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the results as a Markdown table.
    #[arg(long)]
    pub md: Option<PathBuf>,
    /// Write the delivery latency distribution as a PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Worker threads of the load generator's runtime (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl LoadArgs {
    /// The `limit` of each subscriber's transcript window: at least twice
    /// the batch, so one batch never overflows a freshly moved window, and
    /// at most the query's cap of 500.
    pub fn effective_transcript_window(&self) -> usize {
        self.transcript_window
            .max(2 * self.transcript_batch)
            .min(500)
    }

    /// Checks option combinations clap cannot express.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.url.is_empty() && !self.spawn {
            anyhow::bail!("give --url URL[,URL…] or --spawn");
        }
        if !self.url.is_empty() && self.data_dir.is_none() {
            anyhow::bail!("--url needs --data-dir (the server's data dir, to mint dev tokens)");
        }
        if self.spawn_nodes > 1 && self.database_url.is_none() {
            anyhow::bail!("--spawn-nodes > 1 needs --database-url (nodes share one PostgreSQL)");
        }
        if self.meetings == 0 || self.participants == 0 {
            anyhow::bail!("--meetings and --participants must be at least 1");
        }
        for (name, rate) in [
            ("--transcript-rate", self.transcript_rate),
            ("--note-rate", self.note_rate),
            ("--chat-rate", self.chat_rate),
        ] {
            if !rate.is_finite() || rate < 0.0 {
                anyhow::bail!("{name} must be a non-negative number");
            }
        }
        if !(1..=200).contains(&self.transcript_batch) {
            anyhow::bail!("--transcript-batch must be between 1 and 200");
        }
        if self.transcript_batch > 1 && self.transcript_rate > 5.0 {
            anyhow::bail!(
                "with --transcript-batch, --transcript-rate counts batches; the server's rate limit is 5 batches/s per user (300 per minute)"
            );
        }
        if !(self.duration.is_finite() && self.duration > 0.0) {
            anyhow::bail!("--duration must be positive");
        }
        if !(self.warmup.is_finite() && self.warmup >= 0.0) {
            anyhow::bail!("--warmup must be non-negative");
        }
        if !matches!(self.sqlite_sync.as_str(), "full" | "pipelined" | "normal") {
            anyhow::bail!("--sqlite-sync must be full, pipelined or normal");
        }
        Ok(())
    }
}
