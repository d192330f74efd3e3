#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
//! `rampart webhook sign|verify` against the Standard Webhooks reference implementation (the
//! `standardwebhooks` Python package), both ways, and Ed25519 (`v1a`) signatures against
//! `cryptography`'s independent Ed25519.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use rampart_testkit::test_python;

const BIN: &str = env!("CARGO_BIN_EXE_rampart");
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY: &str = r#"{"type":"key.rotated","data":{"kid":"k1","note":"ünïcode"}}"#;

fn run(cmd: &mut Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn python(script: &str, stdin: &str, args: &[&str]) -> Output {
    run(
        Command::new(test_python()).arg("-c").arg(script).args(args),
        stdin,
    )
}

/// `webhook-…: value` lines into (id, timestamp, signature).
fn headers(out: &Output) -> (String, String, String) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_owned()
    };
    (
        get("webhook-id"),
        get("webhook-timestamp"),
        get("webhook-signature"),
    )
}

const PY_VERIFY: &str = r#"
import sys, standardwebhooks
body = sys.stdin.buffer.read()
wh = standardwebhooks.Webhook(sys.argv[1])
try:
    wh.verify(body, {"webhook-id": sys.argv[2], "webhook-timestamp": sys.argv[3], "webhook-signature": sys.argv[4]}, json_parse=False)
    print("ok")
except Exception as e:
    print("refused:", e)
"#;

#[test]
fn the_reference_implementation_verifies_what_rampart_signs() {
    let out = run(
        Command::new(BIN).args(["webhook", "sign", "--secret", SECRET]),
        BODY,
    );
    let (id, ts, sig) = headers(&out);
    assert!(id.starts_with("msg_") && sig.starts_with("v1,"));
    let ok = python(PY_VERIFY, BODY, &[SECRET, &id, &ts, &sig]);
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "ok", "{ok:?}");
    let tampered = python(
        PY_VERIFY,
        &BODY.replace("k1", "k2"),
        &[SECRET, &id, &ts, &sig],
    );
    assert!(String::from_utf8_lossy(&tampered.stdout).starts_with("refused"));

    // Two secrets (a rotation): the reference accepts the message with either one.
    let other = "whsec_dGhpcyBpcyBhIDMyIGJ5dGUgc2VjcmV0IGtleSEhIQ==";
    let out = run(
        Command::new(BIN).args(["webhook", "sign", "--secret", other, "--secret", SECRET]),
        BODY,
    );
    let (id, ts, sig) = headers(&out);
    for s in [SECRET, other] {
        let ok = python(PY_VERIFY, BODY, &[s, &id, &ts, &sig]);
        assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "ok");
    }
}

#[test]
fn rampart_verifies_what_the_reference_implementation_signs() {
    let sign = r#"
import sys, time, datetime, standardwebhooks
wh = standardwebhooks.Webhook(sys.argv[1])
ts = int(time.time())
print(ts)
print(wh.sign("msg_from_python", datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc), sys.stdin.read()))
"#;
    let out = python(sign, BODY, &[SECRET]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let (ts, sig) = (lines.next().unwrap(), lines.next().unwrap());
    let verify = |body: &str, ts: &str| {
        run(
            Command::new(BIN).args([
                "webhook",
                "verify",
                "--secret",
                SECRET,
                "--id",
                "msg_from_python",
                "--timestamp",
                ts,
                "--signature",
                sig,
            ]),
            body,
        )
    };
    let ok = verify(BODY, ts);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = verify(&BODY.replace("k1", "k2"), ts);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("webhook_signature_mismatch"));
    let stale = verify(BODY, &(ts.parse::<i64>().unwrap() - 600).to_string());
    assert_eq!(stale.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&stale.stderr).contains("webhook_timestamp_too_old"));
}

#[test]
fn ed25519_signatures_verify_with_an_independent_implementation() {
    // A fixed seed, so the test also pins the key format.
    let seed = [7u8; 32];
    let seed_b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, seed);
    let secret = format!("whsk_{seed_b64}");
    let out = run(
        Command::new(BIN).args(["webhook", "sign", "--secret", &secret]),
        BODY,
    );
    let (id, ts, sig) = headers(&out);
    let value = sig.strip_prefix("v1a,").expect("an Ed25519 signature");
    let check = r#"
import sys, base64
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(sys.argv[1]))
msg = (sys.argv[2] + "." + sys.argv[3] + ".").encode() + sys.stdin.buffer.read()
key.public_key().verify(base64.b64decode(sys.argv[4]), msg)
print("ok")
"#;
    let ok = python(check, BODY, &[&seed_b64, &id, &ts, value]);
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "ok", "{ok:?}");
    // And Rampart checks it with only the public key, `whpk_…`.
    let pk = python(
        r#"
import sys, base64
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization as s
k = Ed25519PrivateKey.from_private_bytes(base64.b64decode(sys.argv[1])).public_key()
print("whpk_" + base64.b64encode(k.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)).decode())
"#,
        "",
        &[&seed_b64],
    );
    let pk = String::from_utf8(pk.stdout).unwrap().trim().to_owned();
    let v = run(
        Command::new(BIN).args([
            "webhook",
            "verify",
            "--secret",
            &pk,
            "--id",
            &id,
            "--timestamp",
            &ts,
            "--signature",
            &sig,
        ]),
        BODY,
    );
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}

#[test]
fn bad_secrets_are_refused_with_a_reason_and_never_echoed() {
    let out = run(
        Command::new(BIN).args(["webhook", "sign", "--secret", "whsec_c2VjcmV0"]),
        BODY,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("24 to 64 bytes"), "{err}");
    assert!(!err.contains("c2VjcmV0"));
}
