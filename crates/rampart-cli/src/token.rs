//! `rampart token …`: helpers for working with access tokens locally.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use rampart_identity::jwt::{decode_unverified, verify_access_token};
use rampart_identity::{Jwks, VerifyOptions};
use rampart_types::{Clock, SystemClock};
use reqwest::Method;
use serde_json::json;

use crate::client::{Client, Connection, exchange_api_key};

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Exchange the API key (RAMPART_API_KEY or --api-key-file) for tokens and print them.
    Issue {
        /// Narrow the token to these space-separated capabilities.
        #[arg(long)]
        scope: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Print a token's header and claims WITHOUT verifying anything.
    Decode {
        /// The token (`-` reads it from stdin).
        token: String,
    },
    /// Verify a token offline against a JWKS document (a file or an http(s) URL).
    Verify {
        /// The token (`-` reads it from stdin).
        token: String,
        /// JWKS file or URL (default: the server's `/.well-known/jwks.json`).
        #[arg(long, value_name = "FILE|URL")]
        jwks: Option<String>,
        /// Expected issuer.
        #[arg(long, default_value = "rampart")]
        issuer: String,
        /// Server base URL, for the default JWKS location.
        #[arg(long, env = "RAMPART_URL", default_value = "http://127.0.0.1:7420")]
        url: String,
    },
    /// Rotate the server's token signing key now (needs `keys:manage`).
    RotateSigningKey {
        /// Why, for the audit trail.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

fn read_token(arg: &str) -> anyhow::Result<String> {
    if arg == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        Ok(s.trim().to_owned())
    } else {
        Ok(arg.trim().to_owned())
    }
}

pub async fn run(cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCommand::Issue { scope, conn } => {
            let http = reqwest::Client::new();
            let key = conn.api_key()?;
            let tokens = exchange_api_key(
                &http,
                conn.url.trim_end_matches('/'),
                &key,
                scope.as_deref(),
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&tokens)?);
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Decode { token } => {
            let token = read_token(&token)?;
            let (header, claims) = decode_unverified(&token)?;
            let out = json!({ "verified": false, "header": header, "claims": claims });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Verify {
            token,
            jwks,
            issuer,
            url,
        } => {
            let token = read_token(&token)?;
            let source = jwks
                .unwrap_or_else(|| format!("{}/.well-known/jwks.json", url.trim_end_matches('/')));
            let text = if source.starts_with("http://") || source.starts_with("https://") {
                reqwest::get(&source)
                    .await
                    .with_context(|| format!("cannot fetch {source}"))?
                    .text()
                    .await?
            } else {
                std::fs::read_to_string(PathBuf::from(&source))
                    .with_context(|| format!("cannot read {source}"))?
            };
            let jwks: Jwks = serde_json::from_str(&text).context("not a JWKS document")?;
            let opts = VerifyOptions {
                issuer: &issuer,
                now: SystemClock.now(),
                leeway: Duration::from_secs(30),
                max_lifetime: Duration::from_secs(24 * 3600),
            };
            match verify_access_token(&token, &jwks.to_key_set(), &opts) {
                Ok(v) => {
                    let out = json!({ "verified": true, "kid": v.kid(), "claims": v.claims() });
                    println!("{}", serde_json::to_string_pretty(&out)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("invalid: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        TokenCommand::RotateSigningKey { reason, conn } => {
            let c = Client::connect(&conn).await?;
            let body = reason.map(|r| json!({ "reason": r }));
            let out = c
                .call(Method::POST, "/v1/keys/signing/rotate", body)
                .await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
