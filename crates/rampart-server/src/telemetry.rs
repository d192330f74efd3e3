//! Log set-up: JSON lines (or text) through `tracing`, with the request id of the current request
//! in every line emitted while serving it.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Directives always added to the configured filter: statement logging of the SQL driver stays
/// off even at `debug`.
const QUIET: &str = "sqlx=warn,hyper=info,h2=info";

fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_new(format!("{level},{QUIET}")).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber writing to `writer`. Returns false if one was already set.
pub fn init<W>(format: LogFormat, level: &str, writer: W) -> bool
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(writer)
        .with_target(true);
    match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
            .is_ok(),
        LogFormat::Text => builder.try_init().is_ok(),
    }
}

/// A subscriber for one scope (tests), instead of the global one.
pub fn scoped<W>(level: &str, writer: W) -> tracing::subscriber::DefaultGuard
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(writer)
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .finish();
    tracing::subscriber::set_default(subscriber)
}
