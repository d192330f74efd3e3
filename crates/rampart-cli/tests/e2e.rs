//! End to end, as a new user: the real `rampart` binary on a fresh data directory, driven over
//! TCP by its own CLI and by a third-party JWT library (PyJWT), stopped with SIGTERM and
//! restarted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rampart_testkit::test_python;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rampart");

struct Server {
    child: Child,
    addr: String,
    stdout: String,
    stderr_rx: mpsc::Receiver<String>,
    stderr: Vec<String>,
}

fn clean_command(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("RAMPART_") {
            c.env_remove(k);
        }
    }
    c
}

impl Server {
    fn start(dir: &Path) -> Self {
        Self::start_with_env(dir, &[])
    }

    fn start_with_env(dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = clean_command(dir)
            .args(["serve", "--data-dir", "data", "--listen", "127.0.0.1:0"])
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the server did not report listening in time");
            let listen = serde_json::from_str::<Value>(&line)
                .ok()
                .filter(|v| v["fields"]["message"] == "rampart is listening")
                .map(|v| v["fields"]["listen"].as_str().unwrap().to_owned());
            lines.push(line);
            if let Some(a) = listen {
                break a;
            }
        };
        // The operator key banner is printed before the server reports listening; collect what
        // stdout holds by then.
        let out = child.stdout.take().unwrap();
        let (otx, orx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if otx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout = String::new();
        while let Ok(line) = orx.recv_timeout(Duration::from_millis(300)) {
            stdout.push_str(&line);
            stdout.push('\n');
        }
        Self {
            child,
            addr: format!("http://{addr}"),
            stdout,
            stderr_rx: rx,
            stderr: lines,
        }
    }

    /// SIGKILL: the process ends at once, with no shutdown of any kind.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait for a clean exit; returns all stderr lines.
    fn stop(mut self) -> (String, Vec<String>) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let exit = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
        while let Ok(l) = self.stderr_rx.recv_timeout(Duration::from_millis(200)) {
            self.stderr.push(l);
        }
        (self.stdout, self.stderr)
    }
}

fn cli(dir: &Path, server: &str, key: &str, args: &[&str]) -> Output {
    clean_command(dir)
        .args(args)
        .env("RAMPART_URL", server)
        .env("RAMPART_API_KEY", key)
        .output()
        .unwrap()
}

/// [`cli`] with `input` on standard input.
fn cli_stdin(dir: &Path, server: &str, key: &str, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = clean_command(dir)
        .args(args)
        .env("RAMPART_URL", server)
        .env("RAMPART_API_KEY", key)
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
    child.wait_with_output().unwrap()
}

fn json_out(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn operator_key(stdout: &str) -> String {
    stdout
        .split_whitespace()
        .find(|w| w.starts_with("rmp_live_"))
        .expect("the first start prints the operator key")
        .to_owned()
}

#[test]
fn a_new_user_runs_rampart_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d);
    let key = operator_key(&server.stdout);
    let url = server.addr.clone();
    assert!(d.join("data/rampart.db").exists());
    assert!(d.join("data/ledger").is_dir());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("data/root.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The CLI against the API.
    let tenant = json_out(&cli(d, &url, &key, &["tenant", "create", "acme"]));
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();
    let listed = json_out(&cli(d, &url, &key, &["tenant", "list"]));
    assert_eq!(listed["tenants"].as_array().unwrap().len(), 2);
    let created = json_out(&cli(
        d,
        &url,
        &key,
        &[
            "apikey",
            "create",
            "--name",
            "acme-admin",
            "--cap",
            "apikeys:manage",
            "--cap",
            "audit:read",
            "--tenant",
            &tenant_id,
        ],
    ));
    let acme_key = created["key"].as_str().unwrap().to_owned();
    let acme_key_id = created["id"].as_str().unwrap().to_owned();
    let list = json_out(&cli(d, &url, &acme_key, &["apikey", "list"]));
    assert_eq!(list["api_keys"][0]["id"], acme_key_id.as_str());
    let rotated = json_out(&cli(
        d,
        &url,
        &acme_key,
        &["apikey", "rotate", &acme_key_id, "--overlap", "1m"],
    ));
    let acme_key2 = rotated["key"].as_str().unwrap().to_owned();
    let o = cli(d, &url, &acme_key2, &["apikey", "revoke", &acme_key_id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cli(d, &url, &acme_key, &["apikey", "list"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid-client"));
    // A missing capability is reported as the problem's detail.
    let o = cli(d, &url, &acme_key2, &["tenant", "list"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("tenants:admin"));

    // Tokens: issue, decode, verify offline with the served JWKS.
    let tokens = json_out(&cli(d, &url, &acme_key2, &["token", "issue"]));
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let decoded = json_out(&cli(d, &url, &acme_key2, &["token", "decode", &access]));
    assert_eq!(decoded["verified"], false);
    assert_eq!(decoded["claims"]["tenant_id"], tenant_id.as_str());
    let verified = json_out(&cli(
        d,
        &url,
        &acme_key2,
        &["token", "verify", &access, "--url", &url],
    ));
    assert_eq!(verified["verified"], true);
    let mut tampered = access.clone();
    tampered.insert(access.find('.').unwrap() + 3, 'x');
    let o = cli(
        d,
        &url,
        &acme_key2,
        &["token", "verify", &tampered, "--url", &url],
    );
    assert!(!o.status.success());

    // A third-party verifier (PyJWT) accepts our tokens using only our JWKS, and refuses a
    // tampered one.
    let script = r#"
import json, sys, jwt
url, token, tampered = sys.argv[1], sys.argv[2], sys.argv[3]
client = jwt.PyJWKClient(url + "/.well-known/jwks.json")
key = client.get_signing_key_from_jwt(token)
claims = jwt.decode(token, key.key, algorithms=["EdDSA"], issuer="rampart",
                    options={"require": ["exp", "iat", "nbf", "iss", "sub", "jti"]})
try:
    jwt.decode(tampered, key.key, algorithms=["EdDSA"], issuer="rampart")
    print("TAMPERED-ACCEPTED")
except jwt.exceptions.InvalidTokenError:
    pass
print(json.dumps({"claims": claims, "kid": key.key_id}))
"#;
    let o = Command::new(test_python())
        .args(["-c", script, &url, &access, &tampered])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("TAMPERED-ACCEPTED"));
    let py: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(py["claims"]["tenant_id"], tenant_id.as_str());
    assert_eq!(py["kid"], verified["kid"]);

    // SIGTERM: a clean stop. Then a restart keeps everything and prints no key.
    let (stdout1, stderr1) = server.stop();
    let server = Server::start(d);
    assert!(
        !server.stdout.contains("rmp_live_"),
        "the operator key is printed once only"
    );
    let url = server.addr.clone();
    let listed = json_out(&cli(d, &url, &key, &["tenant", "list"]));
    assert_eq!(listed["tenants"].as_array().unwrap().len(), 2);
    let verified = json_out(&cli(
        d,
        &url,
        &key,
        &["token", "verify", &access, "--url", &url],
    ));
    assert_eq!(verified["verified"], true);
    let (_, stderr2) = server.stop();

    // Break-glass: a lost operator key is replaced offline, and the replacement works.
    let o = clean_command(d)
        .args(["operator", "recover", "--data-dir", "data"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recovered = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert!(recovered.starts_with("rmp_live_"));
    let server = Server::start(d);
    let url = server.addr.clone();
    json_out(&cli(d, &url, &recovered, &["tenant", "list"]));
    let (_, stderr3) = server.stop();

    // No credential ever reached a log line.
    let logs = [stderr1, stderr2, stderr3].concat().join("\n");
    assert!(logs.contains("rampart is listening"));
    for secret in [&key, &acme_key, &acme_key2, &recovered, &access] {
        assert!(
            !logs.contains(secret.as_str()),
            "a credential reached the logs"
        );
    }
    let root = std::fs::read_to_string(d.join("data/root.key")).unwrap();
    assert!(!logs.contains(root.trim().trim_start_matches("rampart-root-key-v1:")));
    assert!(stdout1.contains(&key));
}

/// SIGTERM while writes are in flight: the server finishes what it accepted, and every write it
/// acknowledged is there after a restart.
#[test]
fn sigterm_loses_no_acknowledged_write() {
    no_acknowledged_write_is_lost(|server| drop(server.stop()));
}

/// A crash of the process (SIGKILL, no shutdown at all) in the middle of concurrent writes,
/// which the embedded store commits in groups: every write that was answered is still there.
#[test]
fn sigkill_loses_no_acknowledged_write() {
    no_acknowledged_write_is_lost(Server::kill);
}

/// Eight clients create tenants as fast as they can until `end` stops the server; after a
/// restart every creation that was answered `201` is listed.
fn no_acknowledged_write_is_lost(end: fn(Server)) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d);
    let key = operator_key(&server.stdout);
    let url = server.addr.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let acked: Vec<String> = rt.block_on(async {
        let http = reqwest::Client::new();
        let tokens: Value = http
            .post(format!("{url}/v1/auth/token"))
            .json(&serde_json::json!({ "grant_type": "api_key", "api_key": key }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = tokens["access_token"].as_str().unwrap().to_owned();
        let mut writers = Vec::new();
        for w in 0..8 {
            let http = http.clone();
            let url = url.clone();
            let token = token.clone();
            writers.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0.. {
                    let name = format!("w{w}-{i}");
                    let res = http
                        .post(format!("{url}/v1/tenants"))
                        .bearer_auth(&token)
                        .json(&serde_json::json!({ "name": name }))
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == reqwest::StatusCode::CREATED => acked.push(name),
                        Ok(r) => panic!("unexpected status {}", r.status()),
                        // The server has stopped accepting: done.
                        Err(_) => break,
                    }
                }
                acked
            }));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        tokio::task::spawn_blocking(move || end(server))
            .await
            .unwrap();
        let mut all = Vec::new();
        for w in writers {
            all.extend(w.await.unwrap());
        }
        all
    });
    assert!(
        acked.len() > 50,
        "the writers made progress ({})",
        acked.len()
    );
    let server = Server::start(d);
    let listed = json_out(&cli(d, &server.addr, &key, &["tenant", "list"]));
    let names: std::collections::HashSet<String> = listed["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !names.contains(*n)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    server.stop();
}

/// The API against its own OpenAPI document, with generated requests (schemathesis): every
/// status documented, every response matching its schema, valid input accepted and invalid input
/// refused, no 5xx. One check is lifted for three endpoints only, where a request the schema cannot
/// tell from a valid one must be refused: OAuth 2.0 (RFC 6749 §5.2) requires `400 invalid_grant`
/// for a well-formed but unknown refresh token, and a consistency proof `from` a larger tree `to`
/// a smaller one does not exist (RFC 9162 §4.11); a Sentinel policy with two lines for the same
/// class and channel is ambiguous, which JSON Schema cannot express. Checkpoints every second, so receipts do not
/// wait long (a receipt whose wait ends first is a 503, which schemathesis counts as a failure).
#[test]
fn the_api_conforms_to_its_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start_with_env(d, &[("RAMPART_LEDGER_CHECKPOINT_INTERVAL", "1s")]);
    let key = operator_key(&server.stdout);
    let tokens = json_out(&cli(d, &server.addr, &key, &["token", "issue"]));
    let auth = format!(
        "Authorization: Bearer {}",
        tokens["access_token"].as_str().unwrap()
    );
    let schemathesis = test_python().with_file_name("schemathesis");
    let schema = format!("{}/openapi.json", server.addr);
    let run = |extra: &[&str]| {
        let o = Command::new(&schemathesis)
            .args([
                "run",
                &schema,
                "-H",
                &auth,
                "--checks",
                "all",
                "--max-examples",
                "40",
            ])
            .args(["--seed", "20261122", "--no-color"])
            .args([
                "--report-dir",
                d.join("schemathesis-report").to_str().unwrap(),
            ])
            .args(extra)
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "schemathesis found mismatches:\n{}",
            String::from_utf8_lossy(&o.stdout)
        );
    };
    run(&[
        "--exclude-path",
        "/v1/auth/token",
        "--exclude-path",
        "/v1/audit/proofs/consistency",
        "--exclude-path",
        "/v1/sentinel/policy",
    ]);
    run(&[
        "--include-path",
        "/v1/auth/token",
        "--include-path",
        "/v1/audit/proofs/consistency",
        "--include-path",
        "/v1/sentinel/policy",
        "--exclude-checks",
        "positive_data_acceptance",
    ]);
    let (_, stderr) = server.stop();
    let errors: Vec<&String> = stderr
        .iter()
        .filter(|l| l.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(
        errors.is_empty(),
        "generated requests caused server errors:\n{errors:#?}"
    );
}

#[test]
fn bad_configuration_is_reported_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let o = clean_command(dir.path())
        .args(["serve"])
        .env("RAMPART_LISTEN", "nowhere")
        .env("RAMPART_ACCESS_TOKEN_TTL", "forever")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("`listen` (from RAMPART_LISTEN)"), "{err}");
    assert!(
        err.contains("`access_token_ttl` (from RAMPART_ACCESS_TOKEN_TTL)"),
        "{err}"
    );
    assert!(
        !dir.path().join("rampart-data").exists(),
        "nothing is created on a bad config"
    );
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["tenant", "--help"],
        vec!["tenant", "create", "--help"],
        vec!["tenant", "list", "--help"],
        vec!["apikey", "--help"],
        vec!["apikey", "create", "--help"],
        vec!["apikey", "list", "--help"],
        vec!["apikey", "rotate", "--help"],
        vec!["apikey", "revoke", "--help"],
        vec!["token", "--help"],
        vec!["token", "issue", "--help"],
        vec!["token", "decode", "--help"],
        vec!["token", "verify", "--help"],
        vec!["token", "rotate-signing-key", "--help"],
        vec!["operator", "recover", "--help"],
        vec!["audit", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["audit", "verifier-key", "--help"],
        vec!["bench", "--help"],
        vec!["bench", "auth", "--help"],
        vec!["bench", "ledger", "--help"],
        vec!["version", "--help"],
    ] {
        let o = Command::new(BIN).args(&args).output().unwrap();
        assert!(o.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Usage"),
            "{args:?}"
        );
    }
    let o = Command::new(BIN).arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("rampart "));
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at % bytes.len();
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let mut files = Vec::new();
    files_under(from, &mut files);
    for f in files {
        let dest = to.join(f.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dest).unwrap();
    }
}

/// The ledger as an operator and an auditor see it: `rampart audit verifier-key` prints the key
/// the server serves; `rampart audit verify` passes on an honest log — on the host, and on a copy
/// with only the published verifier key — and on a copy with one flipped byte names the bad
/// object and exits 1. Break-glass recovery is recorded in the ledger too, and refuses to run
/// while the server holds it.
#[test]
fn the_ledger_verifies_offline_and_names_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d);
    let key = operator_key(&server.stdout);
    let url = server.addr.clone();
    for name in ["acme", "globex", "initech"] {
        json_out(&cli(d, &url, &key, &["tenant", "create", name]));
    }
    let served = Command::new(test_python())
        .args([
            "-c",
            "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode().strip())",
            &format!("{url}/v1/audit/verifier-key"),
        ])
        .output()
        .unwrap();
    assert!(
        served.status.success(),
        "{}",
        String::from_utf8_lossy(&served.stderr)
    );
    let served = String::from_utf8_lossy(&served.stdout).trim().to_owned();

    // Recovery while the server runs: refused, nothing issued.
    let o = clean_command(d)
        .args(["operator", "recover", "--data-dir", "data"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(o.stdout.is_empty(), "no key is printed");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("stop the server first"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    server.stop();

    // The operator's view: the key derived from the root key is the one the server serves.
    let o = clean_command(d)
        .args(["audit", "verifier-key", "--data-dir", "data"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let vkey = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert_eq!(vkey, served);
    assert!(vkey.starts_with("rampart.local/audit/"), "{vkey}");

    let verify = |args: &[&str]| {
        clean_command(d)
            .arg("audit")
            .arg("verify")
            .args(args)
            .output()
            .unwrap()
    };
    let o = verify(&["--data-dir", "data", "--json"]);
    let report = json_out(&o);
    assert_eq!(report["ok"], true);
    let entries = report["zones"][0]["entries"].as_u64().unwrap();
    assert!(entries >= 5, "{report}");
    assert!(report["zones"][0]["checkpoints"].as_u64().unwrap() >= 2);

    // Break-glass recovery with the server stopped: recorded in the ledger.
    let o = clean_command(d)
        .args(["operator", "recover", "--data-dir", "data"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = json_out(&verify(&["--data-dir", "data", "--json"]));
    assert!(report["zones"][0]["entries"].as_u64().unwrap() > entries);

    // The auditor's view: a copy of the log and the published key, no root key, no config.
    let audit_dir = tempfile::tempdir().unwrap();
    let copy = audit_dir.path().join("ledger");
    copy_dir(&d.join("data/ledger"), &copy);
    let auditor = |args: &[&str]| {
        clean_command(audit_dir.path())
            .args([
                "audit",
                "verify",
                "--zone",
                copy.to_str().unwrap(),
                "--verifier-key",
                &vkey,
            ])
            .args(args)
            .output()
            .unwrap()
    };
    let o = auditor(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains(": ok:"));
    // Another log's key: refused.
    let other = vkey.replacen("rampart.local", "rampart.other", 1);
    let o = clean_command(audit_dir.path())
        .args([
            "audit",
            "verify",
            "--zone",
            copy.to_str().unwrap(),
            "--verifier-key",
            &other,
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());

    // One flipped byte anywhere in the log's files: exit 1, the bad object named.
    let mut files = Vec::new();
    files_under(&copy, &mut files);
    files.retain(|f| f.file_name().unwrap() != "LOCK");
    assert!(!files.is_empty());
    for (k, f) in files.iter().enumerate() {
        let original = std::fs::read(f).unwrap();
        flip_byte(f, 7 + k * 131);
        let o = auditor(&["--json"]);
        assert_eq!(o.status.code(), Some(1), "{} not detected", f.display());
        let report: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["ok"], false);
        assert!(
            report["zones"][0]["object"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{report}"
        );
        std::fs::write(f, original).unwrap();
    }
    assert!(auditor(&[]).status.success(), "restored");

    // Bad input: a missing zone and a malformed key are clear errors.
    let o = clean_command(audit_dir.path())
        .args([
            "audit",
            "verify",
            "--zone",
            "nowhere",
            "--verifier-key",
            &vkey,
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nowhere"));
    let o = clean_command(audit_dir.path())
        .args([
            "audit",
            "verify",
            "--zone",
            copy.to_str().unwrap(),
            "--verifier-key",
            "garbage",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--verifier-key"));
}

/// The server keeps its ledger in an Object Lock bucket as well as on disk (moto in server mode),
/// and `audit verify` checks both; a bucket without Object Lock stops start-up.
#[cfg(feature = "s3")]
#[test]
fn the_ledger_is_kept_in_an_object_lock_bucket_too() {
    use rampart_ledger::s3::{Credentials, S3Client, S3Location};
    let moto = rampart_testkit::MotoServer::start();
    let zone = format!(
        "s3://rampart-e2e/node-1?endpoint={}&retain_days=1",
        moto.endpoint
    );
    let location = S3Location::parse(&zone).unwrap();
    let creds = || {
        Credentials::new(
            "e2e",
            rampart_crypto::Secret::new("e2e-secret-canary".into()),
        )
    };
    S3Client::new(location, creds())
        .create_bucket_with_object_lock()
        .unwrap();
    let env = [
        ("RAMPART_LEDGER_S3_ZONES", zone.as_str()),
        ("RAMPART_LEDGER_S3_ACCESS_KEY_ID", "e2e"),
        ("RAMPART_LEDGER_S3_SECRET_ACCESS_KEY", "e2e-secret-canary"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start_with_env(d, &env);
    let key = operator_key(&server.stdout);
    json_out(&cli(d, &server.addr, &key, &["tenant", "create", "acme"]));
    let (_, stderr) = server.stop();
    assert!(
        !stderr.iter().any(|l| l.contains("e2e-secret-canary")),
        "the S3 secret is never logged"
    );

    let o = clean_command(d)
        .args(["audit", "verify", "--data-dir", "data", "--json"])
        .envs(env)
        .output()
        .unwrap();
    let report = json_out(&o);
    assert_eq!(report["ok"], true, "{report}");
    let zones = report["zones"].as_array().unwrap();
    assert_eq!(zones.len(), 2, "{report}");
    assert!(
        zones[1]["zone"]
            .as_str()
            .unwrap()
            .starts_with("s3://rampart-e2e/node-1")
    );
    assert!(zones[1]["entries"].as_u64().unwrap() >= 2, "{report}");
    assert_eq!(zones[0]["entries"], zones[1]["entries"]);

    // A bucket without Object Lock is refused at start-up, naming the problem.
    let plain = format!("s3://rampart-e2e-plain?endpoint={}", moto.endpoint);
    let c = S3Client::new(S3Location::parse(&plain).unwrap(), creds());
    assert_eq!(c.send("PUT", "", &[], &[], b"").unwrap().status, 200);
    let o = clean_command(d)
        .args(["serve", "--data-dir", "data", "--listen", "127.0.0.1:0"])
        .envs([env[1], env[2], ("RAMPART_LEDGER_S3_ZONES", plain.as_str())])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("Object Lock is not enabled"), "{stderr}");
    assert!(!stderr.contains("e2e-secret-canary"));
}

/// Secrets through the CLI: values in on standard input and out on standard output, exactly;
/// versions, check-and-set, delete / undelete / destroy, listing; a bad path refused before any
/// request.
#[test]
fn secrets_round_trip_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d);
    let key = operator_key(&server.stdout);
    let url = server.addr.clone();
    let put = |path: &str, value: &str, extra: &[&str]| {
        let mut args = vec!["secret", "put", path];
        args.extend_from_slice(extra);
        cli_stdin(d, &url, &key, &args, value)
    };
    let get = |args: &[&str]| {
        let mut all = vec!["secret", "get"];
        all.extend_from_slice(args);
        let o = cli(d, &url, &key, &all);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };

    assert_eq!(json_out(&put("db/password", "first\n", &[]))["version"], 1);
    assert_eq!(
        json_out(&put(
            "db/password",
            "  second, with spaces \n\n",
            &["--cas", "1"]
        ))["version"],
        2
    );
    let o = put("db/password", "x", &["--cas", "1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("check-and-set"));
    assert_eq!(get(&["db/password"]), "  second, with spaces \n");
    assert_eq!(get(&["db/password", "--version", "1"]), "first");
    json_out(&put("db/user", "app", &[]));

    let list = json_out(&cli(d, &url, &key, &["secret", "list", "--prefix", "db/"]));
    let paths: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["db/password", "db/user"]);
    assert!(!list.to_string().contains("second"));

    json_out(&cli(d, &url, &key, &["secret", "delete", "db/password"]));
    let o = cli(d, &url, &key, &["secret", "get", "db/password"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("deleted"));
    json_out(&cli(
        d,
        &url,
        &key,
        &["secret", "undelete", "db/password", "--versions", "2"],
    ));
    let destroyed = json_out(&cli(
        d,
        &url,
        &key,
        &["secret", "destroy", "db/password", "--versions", "1,2"],
    ));
    assert_eq!(destroyed["changed"], 2);
    let meta = json_out(&cli(d, &url, &key, &["secret", "metadata", "db/password"]));
    assert!(meta["versions"][1]["destroyed_at"].is_string());

    // A path that would change the URL never leaves the client.
    let o = cli(d, &url, &key, &["secret", "get", "db/password?version=1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a secret path"));
    server.stop();
}

/// The Vault-compatible KV v2 endpoint, driven by an unmodified Vault client (hvac): writes with
/// check-and-set, versioned reads, folder listing, soft delete, a bad token refused; the same
/// secrets are Rampart secrets under `{mount}/{path}`.
#[test]
fn a_vault_client_works_against_the_kv_v2_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d);
    let key = operator_key(&server.stdout);
    let url = server.addr.clone();
    let tokens = json_out(&cli(d, &url, &key, &["token", "issue"]));
    let token = tokens["access_token"].as_str().unwrap();
    let script = r#"
import sys, hvac
url, token = sys.argv[1], sys.argv[2]
kv = hvac.Client(url=url + "/vault", token=token).secrets.kv.v2
def expect(exc, f):
    try:
        f()
    except exc:
        return
    raise SystemExit(f"expected {exc.__name__}")
w = kv.create_or_update_secret(path="db/creds", secret={"user": "app", "password": "canary-1"}, cas=0)
assert w["data"]["version"] == 1, w
w = kv.create_or_update_secret(path="db/creds", secret={"user": "app", "password": "canary-2"}, cas=1)
assert w["data"]["version"] == 2, w
expect(hvac.exceptions.InvalidRequest, lambda: kv.create_or_update_secret(path="db/creds", secret={"x": "y"}, cas=1))
r = kv.read_secret_version(path="db/creds", raise_on_deleted_version=True)
assert r["data"]["data"] == {"user": "app", "password": "canary-2"}, r
assert r["data"]["metadata"]["version"] == 2, r
r = kv.read_secret_version(path="db/creds", version=1, raise_on_deleted_version=True)
assert r["data"]["data"]["password"] == "canary-1", r
kv.create_or_update_secret(path="db/other", secret={"a": "b"})
kv.create_or_update_secret(path="top", secret={"a": "b"})
assert kv.list_secrets(path="")["data"]["keys"] == ["db/", "top"]
assert kv.list_secrets(path="db")["data"]["keys"] == ["creds", "other"]
expect(hvac.exceptions.InvalidPath, lambda: kv.list_secrets(path="nothing"))
kv.delete_latest_version_of_secret(path="db/creds")
expect(hvac.exceptions.InvalidPath, lambda: kv.read_secret_version(path="db/creds", raise_on_deleted_version=True))
expect(hvac.exceptions.InvalidPath, lambda: kv.read_secret_version(path="missing", raise_on_deleted_version=True))
bad = hvac.Client(url=url + "/vault", token="not-a-token").secrets.kv.v2
expect(hvac.exceptions.Unauthorized, lambda: bad.read_secret_version(path="db/other", raise_on_deleted_version=True))
print("ok")
"#;
    let o = Command::new(test_python())
        .args(["-c", script, &url, token])
        .output()
        .unwrap();
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "ok",
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // The same secrets through Rampart's own API and CLI: a JSON object value, versions intact.
    let meta = json_out(&cli(
        d,
        &url,
        &key,
        &["secret", "metadata", "secret/db/creds"],
    ));
    assert_eq!(meta["current_version"], 2);
    assert!(meta["versions"][1]["deleted_at"].is_string());
    let o = cli(
        d,
        &url,
        &key,
        &["secret", "get", "secret/db/creds", "--version", "1"],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["password"], "canary-1");
    server.stop();
}
