//! `rampart webhook sign|verify`: Standard Webhooks signatures from the shell, for testing a
//! receiver or checking a captured delivery. The body is read from standard input, byte for byte.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use rampart_types::{Clock, SystemClock};
use rampart_webhooks::{Headers, Signer, SigningSecret, Verifier, VerifyKey, new_message_id};

#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// Sign the body on stdin; print the three headers on stdout.
    Sign {
        /// `whsec_…` (HMAC-SHA256, `v1`) or `whsk_…` (Ed25519, `v1a`); repeat to sign with
        /// several keys, as during a rotation.
        #[arg(
            long,
            required = true,
            env = "RAMPART_WEBHOOK_SECRET",
            hide_env_values = true
        )]
        secret: Vec<String>,
        /// The message id (default: a new random `msg_…`).
        #[arg(long)]
        id: Option<String>,
        /// Unix seconds (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
    },
    /// Verify the body on stdin against the headers; exit 0 only when valid. Checks the
    /// timestamp (within 5 minutes of now) and the signature; a single run cannot check replay.
    Verify {
        /// `whsec_…`, `whpk_…` or `whsk_…`; repeat to accept any of several.
        #[arg(
            long,
            required = true,
            env = "RAMPART_WEBHOOK_SECRET",
            hide_env_values = true
        )]
        secret: Vec<String>,
        /// The `webhook-id` header.
        #[arg(long)]
        id: String,
        /// The `webhook-timestamp` header.
        #[arg(long)]
        timestamp: String,
        /// The `webhook-signature` header.
        #[arg(long)]
        signature: String,
    },
}

fn stdin_bytes() -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .context("reading the body from stdin")?;
    Ok(body)
}

pub fn run(cmd: WebhookCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        WebhookCommand::Sign {
            secret,
            id,
            timestamp,
        } => {
            let keys = secret
                .iter()
                .map(|s| SigningSecret::parse(s))
                .collect::<Result<Vec<_>, _>>()
                .context("--secret")?;
            let id = match id {
                Some(id) => id,
                None => new_message_id()?,
            };
            let ts = timestamp.unwrap_or_else(|| SystemClock.now().unix_seconds());
            let body = stdin_bytes()?;
            let sig = Signer::new(keys).sign(&id, ts, &body);
            println!("webhook-id: {id}\nwebhook-timestamp: {ts}\nwebhook-signature: {sig}");
            Ok(ExitCode::SUCCESS)
        }
        WebhookCommand::Verify {
            secret,
            id,
            timestamp,
            signature,
        } => {
            let keys = secret
                .iter()
                .map(|s| VerifyKey::parse(s))
                .collect::<Result<Vec<_>, _>>()
                .context("--secret")?;
            let body = stdin_bytes()?;
            let headers = Headers {
                id: Some(&id),
                timestamp: Some(&timestamp),
                signature: Some(&signature),
            };
            match Verifier::new(keys).verify(headers, &body, SystemClock.now().unix_seconds()) {
                Ok(_) => {
                    println!("valid");
                    Ok(ExitCode::SUCCESS)
                }
                Err(r) => {
                    eprintln!("invalid ({}): {r}", r.code());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
