#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
//! `rampart sentinel scan|redact` through the binary: the JSON-lines contract.

use std::io::Write;
use std::process::{Command, Stdio};

fn run(args: &[&str], input: &str) -> (i32, Vec<serde_json::Value>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.status.code().unwrap(), lines)
}

#[test]
fn scan_reports_code_point_offsets_one_line_per_input() {
    let input =
        "{\"text\":\"Grüße! Mail jane.doe@example.com\"}\nnot json\n{\"text\":\"nothing here\"}\n";
    let (code, lines) = run(&["sentinel", "scan"], input);
    assert_eq!(code, 1, "a bad line makes the exit status 1");
    assert_eq!(lines.len(), 3);
    let span = &lines[0]["spans"][0];
    assert_eq!(span["class"], "EMAIL");
    // "Grüße! Mail " is 12 code points (14 bytes).
    assert_eq!(span["start"], 12);
    assert_eq!(span["end"], 32);
    assert!(span["score"].as_f64().unwrap() > 0.5);
    assert!(lines[1]["error"].as_str().unwrap().starts_with("line 2:"));
    assert_eq!(lines[2]["spans"].as_array().unwrap().len(), 0);
}

#[test]
fn redact_applies_the_policy_and_refuses_reversible_offline() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, r#"{"default":{"mode":"strict","threshold":0.5},"rules":[{"class":"HEALTH","mode":"flag"}]}"#).unwrap();
    let input = "{\"text\":\"Card 4111 1111 1111 1111 for her asthma\"}\n{\"text\":\"Card 4111-1111-1111-1111\"}\n";
    let args = [
        "sentinel",
        "redact",
        "--policy",
        policy.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ];
    let (code, lines) = run(&args, input);
    assert_eq!(code, 0);
    let first = lines[0]["text"].as_str().unwrap();
    assert!(!first.contains("4111"), "{first}");
    assert!(first.contains("asthma"), "flag passes through");
    // The same card written differently gets the same token under the same key.
    let token = lines[0]["spans"][0]["token"].as_str().unwrap();
    assert_eq!(lines[1]["spans"][0]["token"].as_str().unwrap(), token);

    std::fs::write(
        &policy,
        r#"{"default":{"mode":"reversible","threshold":0.5}}"#,
    )
    .unwrap();
    let (code, _) = run(&args, input);
    assert_ne!(code, 0);
}
