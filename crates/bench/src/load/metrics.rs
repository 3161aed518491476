//! Measurements outside the load connections: the server processes' CPU
//! and RSS (from `/proc`, same machine only), the server's Prometheus
//! metrics (`GET /metrics`), and latency distributions.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Linux reports `utime`/`stime` in USER_HZ ticks, which is 100 on every
/// mainstream architecture (it is fixed by the kernel ABI, not by CONFIG_HZ).
const USER_HZ: f64 = 100.0;

/// CPU time and RSS of a set of processes at one instant.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// When sampled.
    pub at: Instant,
    /// User + system CPU seconds, summed over the processes.
    pub cpu_secs: f64,
    /// Resident set size in bytes, summed.
    pub rss_bytes: u64,
}

/// Samples `/proc/<pid>/stat` and `/proc/<pid>/status`; `None` when a
/// process cannot be read (gone, or not on this machine).
pub fn sample_procs(pids: &[u32]) -> Option<ProcSample> {
    if pids.is_empty() {
        return None;
    }
    let mut cpu = 0.0;
    let mut rss = 0;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the `(comm)`, which may contain spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        cpu += (utime + stime) / USER_HZ;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        rss += kb * 1024;
    }
    Some(ProcSample {
        at: Instant::now(),
        cpu_secs: cpu,
        rss_bytes: rss,
    })
}

/// Server CPU use between two samples, in cores (1.0 = one core busy).
pub fn cpu_cores(a: &ProcSample, b: &ProcSample) -> f64 {
    let wall = b.at.duration_since(a.at).as_secs_f64();
    if wall <= 0.0 {
        0.0
    } else {
        (b.cpu_secs - a.cpu_secs) / wall
    }
}

/// One Prometheus sample: name, labels, value.
#[derive(Debug, Clone)]
pub struct PromSample {
    /// Metric name.
    pub name: String,
    /// Label pairs.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// Parses the Prometheus text format (enough of it for our exporter:
/// label values without escaped quotes).
pub fn parse_prometheus(text: &str) -> Vec<PromSample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (head, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match head.split_once('{') {
            Some((name, rest)) => {
                let body = rest.trim_end_matches('}');
                let mut labels = BTreeMap::new();
                for pair in body.split("\",") {
                    if let Some((k, v)) = pair.split_once('=') {
                        labels.insert(k.trim().to_owned(), v.trim_matches('"').to_owned());
                    }
                }
                (name.to_owned(), labels)
            }
            None => (head.to_owned(), BTreeMap::new()),
        };
        out.push(PromSample {
            name,
            labels,
            value,
        });
    }
    out
}

/// Fetches and parses `GET {url}/metrics`.
pub async fn scrape(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<PromSample>> {
    let text = client
        .get(format!("{}/metrics", url.trim_end_matches('/')))
        .timeout(Duration::from_secs(10))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(parse_prometheus(&text))
}

/// Scrapes every node and concatenates the samples, so counters sum over
/// the cluster (each node counts the commits and query executions it
/// made). `None` when any node cannot be scraped (a partial sum would be
/// silently wrong).
pub async fn scrape_all(client: &reqwest::Client, urls: &[String]) -> Option<Vec<PromSample>> {
    if urls.is_empty() {
        return None;
    }
    let mut all = Vec::new();
    for url in urls {
        all.extend(scrape(client, url).await.ok()?);
    }
    Some(all)
}

/// Sum of every sample of counter `name` (over labels and nodes).
pub fn counter_sum(samples: &[PromSample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

/// Query execution time from the server's `connvo_function_seconds`
/// summaries (kind `query`): per path, the quantiles the exporter keeps
/// (over its rolling window), in ms. Returns `(worst-path quantiles, per-path JSON)`.
pub fn query_quantiles(samples: &[PromSample]) -> (Quantiles, Value) {
    let mut per_path: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for s in samples {
        if s.name != "connvo_function_seconds" {
            continue;
        }
        if s.labels.get("kind").map(String::as_str) != Some("query") {
            continue;
        }
        let (Some(path), Some(q)) = (s.labels.get("path"), s.labels.get("quantile")) else {
            continue;
        };
        let entry = per_path.entry(path.clone()).or_default();
        let ms = s.value * 1000.0;
        let slot = entry.entry(q.clone()).or_insert(0.0);
        // Several statuses (success / error): keep the slower.
        if ms > *slot {
            *slot = ms;
        }
    }
    let mut worst = Quantiles::default();
    let mut json_paths = serde_json::Map::new();
    for (path, qs) in &per_path {
        let get = |q: &str| qs.get(q).copied().unwrap_or(0.0);
        let this = Quantiles {
            p50: get("0.5"),
            p95: get("0.95"),
            p99: get("0.99"),
            max: get("1"),
            count: 0,
        };
        worst.p50 = worst.p50.max(this.p50);
        worst.p95 = worst.p95.max(this.p95);
        worst.p99 = worst.p99.max(this.p99);
        worst.max = worst.max.max(this.max);
        json_paths.insert(path.clone(), this.to_json());
    }
    (worst, Value::Object(json_paths))
}

/// p50/p95/p99/max of a distribution, in ms.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
    /// Number of samples (0 when unknown).
    pub count: usize,
}

impl Quantiles {
    /// Nearest-rank quantiles of durations in µs (sorted in place).
    pub fn from_us(samples: &mut [u64]) -> Quantiles {
        if samples.is_empty() {
            return Quantiles::default();
        }
        samples.sort_unstable();
        let n = samples.len();
        let at = |p: f64| {
            let rank = ((p / 100.0) * n as f64).ceil() as usize;
            samples[rank.clamp(1, n) - 1] as f64 / 1000.0
        };
        Quantiles {
            p50: at(50.0),
            p95: at(95.0),
            p99: at(99.0),
            max: samples[n - 1] as f64 / 1000.0,
            count: n,
        }
    }

    /// `{p50, p95, p99, max}` (ms, 3 decimals) plus `count` when known.
    pub fn to_json(self) -> Value {
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        let mut v = json!({ "p50": r(self.p50), "p95": r(self.p95), "p99": r(self.p99), "max": r(self.max) });
        if self.count > 0 {
            v["count"] = json!(self.count);
        }
        v
    }
}

/// Microseconds of a duration, saturating.
pub fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exporter_lines() {
        let text = "# TYPE x summary\nconnvo_function_seconds{path=\"a/b:c\",kind=\"query\",status=\"success\",quantile=\"0.95\"} 0.004\nconnvo_commits_total 12\n";
        let s = parse_prometheus(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].labels["path"], "a/b:c");
        assert_eq!(s[0].labels["quantile"], "0.95");
        assert_eq!(counter_sum(&s, "connvo_commits_total"), 12.0);
        let (q, _) = query_quantiles(&s);
        assert!((q.p95 - 4.0).abs() < 1e-9);
    }

    #[test]
    fn quantiles_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        let q = Quantiles::from_us(&mut v);
        assert_eq!(q.p50, 50.0);
        assert_eq!(q.p95, 95.0);
        assert_eq!(q.p99, 99.0);
        assert_eq!(q.max, 100.0);
    }

    #[test]
    fn reads_own_process() {
        let s = sample_procs(&[std::process::id()]).expect("own /proc entry");
        assert!(s.rss_bytes > 0);
    }
}
