//! `rampart secret …`: the tenant's secrets through the API. Values travel through standard input
//! and output only — never the command line, where other users of the host can read them.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use rampart_crypto::Secret;
use rampart_secrets::SecretPath;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Client, Connection};

#[derive(Subcommand, Debug)]
pub enum SecretCommand {
    /// Write a new version. The value is read from standard input (one trailing newline is
    /// dropped), e.g. `printf %s "$PASSWORD" | rampart secret put db/password`.
    Put {
        path: String,
        /// Write only if the newest version is this one (`0`: only if the path is new).
        #[arg(long, value_name = "VERSION")]
        cas: Option<i64>,
    },
    /// Print a value (exactly, with no newline added) to standard output.
    Get {
        path: String,
        /// A version (default: the newest).
        #[arg(long)]
        version: Option<i64>,
    },
    /// List secrets whose path starts with a prefix (every page), never values.
    List {
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// A secret's versions and their states.
    Metadata { path: String },
    /// Soft-delete versions (default: the newest); `undelete` restores them.
    Delete {
        path: String,
        #[arg(long, value_delimiter = ',', value_name = "N,…")]
        versions: Vec<i64>,
    },
    /// Restore soft-deleted versions.
    Undelete {
        path: String,
        #[arg(long, value_delimiter = ',', value_name = "N,…", required = true)]
        versions: Vec<i64>,
    },
    /// Destroy versions for good (needs `secrets:admin`).
    Destroy {
        path: String,
        #[arg(long, value_delimiter = ',', value_name = "N,…", required = true)]
        versions: Vec<i64>,
    },
}

/// Checked here too, so a path can never smuggle a query string or another route into the URL.
fn path(raw: &str) -> anyhow::Result<SecretPath> {
    raw.parse()
        .map_err(|e| anyhow::anyhow!("`{raw}` is not a secret path: {e}"))
}

fn read_value() -> anyhow::Result<Secret<String>> {
    let mut value = Secret::new(String::new());
    std::io::stdin()
        .read_to_string(value.expose_mut())
        .context("reading the value from standard input")?;
    let v = value.expose_mut();
    if v.ends_with('\n') {
        v.pop();
        if v.ends_with('\r') {
            v.pop();
        }
    }
    Ok(value)
}

fn print(v: &Value) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(ExitCode::SUCCESS)
}

pub async fn run(cmd: SecretCommand, conn: Connection) -> anyhow::Result<ExitCode> {
    let c = Client::connect(&conn).await?;
    match cmd {
        SecretCommand::Put { path: p, cas } => {
            let p = path(&p)?;
            let value = read_value()?;
            let mut body = json!({ "value": value.expose() });
            if let Some(cas) = cas {
                body["cas"] = json!(cas);
            }
            print(
                &c.call(Method::PUT, &format!("/v1/secrets/data/{p}"), Some(body))
                    .await?,
            )
        }
        SecretCommand::Get { path: p, version } => {
            let p = path(&p)?;
            let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
            let out = c
                .call(Method::GET, &format!("/v1/secrets/data/{p}{query}"), None)
                .await?;
            let value = out["value"].as_str().context("the response has no value")?;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(value.as_bytes())?;
            stdout.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        SecretCommand::List { prefix } => {
            let mut all = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let mut query = vec![("prefix", prefix.clone()), ("limit", "1000".into())];
                if let Some(a) = &after {
                    query.push(("after", a.clone()));
                }
                let qs = serde_urlencoded::to_string(&query)?;
                let page = c
                    .call(Method::GET, &format!("/v1/secrets/metadata?{qs}"), None)
                    .await?;
                if let Some(items) = page["secrets"].as_array() {
                    all.extend(items.iter().cloned());
                }
                match page["next"].as_str() {
                    Some(n) => after = Some(n.to_owned()),
                    None => break,
                }
            }
            print(&Value::Array(all))
        }
        SecretCommand::Metadata { path: p } => {
            let p = path(&p)?;
            print(
                &c.call(Method::GET, &format!("/v1/secrets/metadata/{p}"), None)
                    .await?,
            )
        }
        SecretCommand::Delete { path: p, versions } => {
            let p = path(&p)?;
            let out = if versions.is_empty() {
                c.call(Method::DELETE, &format!("/v1/secrets/data/{p}"), None)
                    .await?
            } else {
                c.call(
                    Method::POST,
                    &format!("/v1/secrets/delete/{p}"),
                    Some(json!({ "versions": versions })),
                )
                .await?
            };
            print(&out)
        }
        SecretCommand::Undelete { path: p, versions } => {
            let p = path(&p)?;
            print(
                &c.call(
                    Method::POST,
                    &format!("/v1/secrets/undelete/{p}"),
                    Some(json!({ "versions": versions })),
                )
                .await?,
            )
        }
        SecretCommand::Destroy { path: p, versions } => {
            let p = path(&p)?;
            print(
                &c.call(
                    Method::POST,
                    &format!("/v1/secrets/destroy/{p}"),
                    Some(json!({ "versions": versions })),
                )
                .await?,
            )
        }
    }
}
