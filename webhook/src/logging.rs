//! Logs: one line per event on stdout, as text for people or JSON for log pipelines.

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line, event fields at the top level.
    Json,
}

/// Installs the global subscriber: sidekiq-guard's own events at `level`, its libraries' at
/// `warn` (or `level`, when that is quieter) so that debugging the webhook does not drown in
/// TLS and HTTP internals.
pub fn init(format: LogFormat, level: Level) {
    let libraries = if level < Level::WARN {
        level
    } else {
        Level::WARN
    };
    let filter = Targets::new()
        .with_default(libraries)
        .with_target("sidekiq_guard_webhook", level)
        .with_target("sidekiq_guard", level);
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stdout)
                    .with_ansi(false),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(std::io::stdout),
            )
            .try_init(),
    };
    // Only fails when a subscriber is already installed (tests); keep that one.
    let _ = result;
}
