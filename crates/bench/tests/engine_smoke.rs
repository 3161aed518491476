//! Smoke test of `connvo-bench engine --quick`: the binary runs end to end
//! against a real SQLite store, writes its JSON report, every benchmark has
//! positive figures, and the invalidation check saw exactly the 1,000 watched
//! subscriptions invalidated and none of the others.
#![allow(missing_docs)]

use std::process::Command;

use serde_json::Value;

const BENCHMARKS: [&str; 4] = [
    "point_read",
    "range_read_100",
    "insert_mutation",
    "invalidate_1000",
];

#[test]
fn engine_quick_writes_a_complete_json_report() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let json_path = tmp.path().join("engine.json");
    let md_path = tmp.path().join("engine.md");
    let data_dir = tmp.path().join("data");
    let output = Command::new(env!("CARGO_BIN_EXE_connvo-bench"))
        .args(["engine", "--quick", "--runs", "3", "--json"])
        .arg(&json_path)
        .arg("--md")
        .arg(&md_path)
        .arg("--data-dir")
        .arg(&data_dir)
        .output()
        .expect("run connvo-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "connvo-bench failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(stdout.contains("median"), "no table on stdout:\n{stdout}");

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("read json"))
            .expect("valid json");
    assert_eq!(report["command"], "engine");
    assert_eq!(report["config"]["runs"], 3);
    let benchmarks = report["benchmarks"].as_array().expect("benchmarks array");
    let names: Vec<&str> = benchmarks
        .iter()
        .map(|b| b["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, BENCHMARKS);

    for bench in benchmarks {
        let name = &bench["name"];
        assert!(bench["unit"].as_str().is_some_and(|u| !u.is_empty()));
        for key in ["median", "min", "max"] {
            let v = bench[key].as_f64().unwrap_or(0.0);
            assert!(v > 0.0, "{name}.{key} = {v}");
        }
        let figures = bench["figures"].as_array().expect("figures");
        assert!(!figures.is_empty(), "{name} has no figures");
        for f in figures {
            let median = f["median"].as_f64().unwrap_or(0.0);
            assert!(median > 0.0, "{name}.{} median = {median}", f["name"]);
            assert!(
                f["min"].as_f64() <= f["max"].as_f64(),
                "{name}.{}",
                f["name"]
            );
            assert_eq!(f["runs"].as_array().map(Vec::len), Some(3));
        }
    }

    let checks = &benchmarks[3]["checks"];
    assert_eq!(checks["subscriptions"], 1000, "{checks}");
    assert_eq!(checks["invalidated"], 1000, "{checks}");
    assert_eq!(checks["other_subscriptions"], 10_000, "{checks}");
    assert_eq!(checks["false_positives"], 0, "{checks}");

    let md = std::fs::read_to_string(&md_path).expect("read markdown");
    assert!(md.contains("| benchmark | figure | median | min | max | unit |"));
    assert!(
        data_dir.join("connvo.db").exists(),
        "store not in --data-dir"
    );
}
