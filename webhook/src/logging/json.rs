//! The JSON log line: `tracing-subscriber`'s JSON shape (`timestamp`, `level`, the message and
//! the event's fields at the top level, `target`), written straight into the line.
//!
//! `tracing-subscriber`'s own JSON formatter gathers every field into a map of
//! `serde_json::Value`s before writing any: at 13 fields, the admission line cost about 25,000
//! instructions, 6 % of a whole `/mutate` request. Written field by field as they are
//! visited, the same line costs a fraction of that; strings are escaped by the core's
//! [`json_text`](sidekiq_guard::json_text), as serde_json escapes them (serde_json's own escaper
//! writes to an `io::Write`: here it would need an adapter checking every fragment as UTF-8
//! again on its way into the line). Spans are not written: the webhook opens none whose fields
//! a line should carry.

use std::fmt::{self, Write as _};

use sidekiq_guard::json_text::{Escaped, write_str};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats each event as one JSON object on a line.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\"", metadata.level())?;
        let mut fields = Fields {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        write_str(&mut writer, metadata.target())?;
        writer.write_str("}\n")
    }
}

/// Writes each visited field as `,"name":value`.
struct Fields<'a, W: fmt::Write> {
    out: &'a mut W,
    /// The first failure to write: `Visit` cannot return one.
    result: fmt::Result,
}

impl<W: fmt::Write> Fields<'_, W> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            self.out.write_char(',')?;
            // A raw identifier (`r#type`) names the field `type`, as tracing-subscriber writes it.
            let name = field.name();
            write_str(self.out, name.strip_prefix("r#").unwrap_or(name))?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

impl<W: fmt::Write> Visit for Fields<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |out| write_str(out, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // As serde_json writes it (`1.0`, `1e300`, not Rust's `1` and 301 digits); JSON has no
        // NaN or infinity, which serde_json writes as null.
        match serde_json::Number::from_f64(value) {
            Some(number) => self.field(field, |out| write!(out, "{number}")),
            None => self.field(field, |out| out.write_str("null")),
        }
    }

    /// The message (`format_args!`), `%` and `?` values, errors: their text, as a string.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::logging::tests::Sink as Lines;

    /// The lines `emit` logs through `JsonLine` and through tracing-subscriber's own JSON
    /// formatter, configured as the webhook configured it before.
    fn both(emit: impl Fn()) -> (String, String) {
        let ours = Lines::default();
        let theirs = Lines::default();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(JsonLine)
                    .with_writer(ours.clone()),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(theirs.clone()),
            );
        tracing::subscriber::with_default(subscriber, emit);
        let text = |lines: Lines| String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        (text(ours), text(theirs))
    }

    /// Each line as JSON, its timestamp checked for shape and dropped (the two formatters
    /// read the clock apart).
    fn parsed(lines: &str) -> Vec<Value> {
        lines
            .lines()
            .map(|line| {
                let mut value: Value = serde_json::from_str(line)
                    .unwrap_or_else(|err| panic!("{line:?} is not JSON: {err}"));
                let timestamp = value["timestamp"].as_str().unwrap().to_owned();
                assert!(
                    timestamp.len() == 27 && timestamp.ends_with('Z'),
                    "{timestamp}"
                );
                value.as_object_mut().unwrap().remove("timestamp");
                value
            })
            .collect()
    }

    #[test]
    fn an_admission_line_is_what_tracing_subscriber_wrote() {
        let (ours, theirs) = both(|| {
            tracing::info!(
                endpoint = "mutate",
                uid = "7\"05\\ab\n",
                dry_run = false,
                warnings = 2usize,
                elapsed_us = 417u64,
                offset = -3i64,
                ratio = 0.5f64,
                whole = 1.0f64,
                huge = 1e300f64,
                nan = f64::NAN,
                r#type = "Pod",
                shown = %"a \u{1} b",
                debugged = ?Some("x"),
                "admission"
            );
            tracing::warn!(error = %std::io::Error::other("gone\tnow"), "refused");
        });
        assert!(ours.ends_with('\n') && ours.lines().count() == 2, "{ours}");
        assert_eq!(parsed(&ours), parsed(&theirs), "\n{ours}\n{theirs}");
        assert!(ours.starts_with("{\"timestamp\":\""), "{ours}");
        assert!(
            ours.contains(
                ",\"level\":\"INFO\",\"message\":\"admission\",\"endpoint\":\"mutate\",\"uid\":\"7\\\"05\\\\ab\\n\","
            ),
            "{ours}"
        );
    }
}
