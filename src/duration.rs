//! Durations as users write them in annotations and the policy (`90s`, `15m`, `1h30m`, `300`).
//!
//! Everything downstream works in whole seconds because that is the unit of
//! `terminationGracePeriodSeconds` and of Sidekiq's `-t`. Fractions round *up*: a job declared as
//! `1.5s` needs two seconds of grace, never one.

use std::fmt;
use std::time::Duration;

/// The formats accepted wherever a duration is read, quoted in every error message.
pub const ACCEPTED: &str = "a number of seconds or a duration with units such as 90s, 15m or 1h30m";

/// The longest duration accepted: far beyond any job or certificate, and far enough from the
/// limits of `Instant` and `SystemTime` that adding it to a clock reading cannot overflow.
pub const MAX: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A duration string that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration at all.
    #[error("invalid duration {input:?}: expected {ACCEPTED}")]
    Invalid {
        /// The text as written.
        input: String,
    },
    /// A unit `M`, which humantime reads as months: refused as the slip for minutes it far
    /// likelier is.
    #[error(
        "invalid duration {input:?}: M is not a unit (months are not durations Kubernetes knows); minutes are m, as in 15m"
    )]
    Months {
        /// The text as written.
        input: String,
    },
    /// An ISO 8601 duration (`PT5M`), which other tools write: named, with what to write.
    #[error(
        "invalid duration {input:?}: ISO 8601 durations are not read; write units as Kubernetes and Go do, as in 5m or 1h30m"
    )]
    Iso8601 {
        /// The text as written.
        input: String,
    },
    /// A duration beyond [`MAX`].
    #[error("duration {input:?} is too long: at most 100 years (876000h)")]
    TooLong {
        /// The text as written.
        input: String,
    },
}

/// Parses `input` exactly: a bare number is seconds (`300`, `1.5`), anything else a duration with units to the
/// nanosecond (`500ms`, `1m30s`, `1h 30m`). Negative values, empty strings and durations
/// beyond [`MAX`] are rejected.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    // Go's `time.ParseDuration` takes an explicit plus sign (`+5m`).
    let trimmed = input.trim();
    let text = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let invalid = || DurationError::Invalid {
        input: input.to_owned(),
    };
    if text.is_empty() {
        return Err(invalid());
    }
    if is_iso8601(text) {
        return Err(DurationError::Iso8601 {
            input: input.to_owned(),
        });
    }
    let decimal = text.split_once('.').is_some_and(|(whole, fraction)| {
        !whole.is_empty()
            && !fraction.is_empty()
            && whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
    });
    let too_long = || DurationError::TooLong {
        input: input.to_owned(),
    };
    let duration = if text.bytes().all(|b| b.is_ascii_digit()) {
        // Only digits: a number that does not fit 64 bits is a duration too long.
        text.parse()
            .map(Duration::from_secs)
            .map_err(|_| too_long())?
    } else if decimal {
        // A number of seconds is a number: `1.5` is read like `1.5s`.
        let secs: f64 = text.parse().map_err(|_| invalid())?;
        if secs > MAX.as_secs_f64() {
            return Err(too_long());
        }
        Duration::from_secs_f64(secs)
    } else if text.contains('M') {
        // humantime reads `M` as months; Go and Kubernetes durations have no such unit, and
        // `15M` is far likelier a slip for 15 minutes than a job of 15 months.
        return Err(if months_unit(text) {
            DurationError::Months {
                input: input.to_owned(),
            }
        } else {
            invalid()
        });
    } else {
        humantime::parse_duration(text).map_err(|e| match e {
            // humantime says "overflow" also of a fraction it cannot divide exactly into its
            // unit (`1.333h`): only whole numbers overflow for their size.
            humantime::DurationError::NumberOverflow if !text.contains('.') => too_long(),
            _ => invalid(),
        })?
    };
    if duration > MAX {
        return Err(too_long());
    }
    Ok(duration)
}

/// Whether `text` is written as an ISO 8601 duration: `P`, then digits and its designators
/// (`PT5M`, `P1DT2H`, `PT1.5S`).
fn is_iso8601(text: &str) -> bool {
    text.strip_prefix(['P', 'p']).is_some_and(|rest| {
        rest.bytes().any(|b| b.is_ascii_digit())
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || b"TtYyMmWwDdHhSs.,".contains(&b))
            && rest
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_digit() || b == b'T' || b == b't')
    })
}

/// Whether `text` writes a number followed by the unit `M` alone (`15M`, `1h5M`, `15 M`, as
/// humantime skips the space), not a word that starts with M (`1 Month`).
fn months_unit(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(at, &b)| {
        b == b'M'
            && text[..at]
                .trim_end()
                .ends_with(|c: char| c.is_ascii_digit())
            && bytes
                .get(at + 1)
                .is_none_or(|next| !next.is_ascii_alphabetic())
    })
}

/// Parses `input` into whole seconds, rounding fractions up.
///
/// A bare integer is seconds (like Sidekiq's `-t`); anything else goes through `humantime`, so
/// `1h30m`, `1h 30m` and `90min` all work. Negative values and empty strings are rejected.
pub fn parse_secs(input: &str) -> Result<u64, DurationError> {
    let duration = parse(input)?;
    let secs = duration.as_secs();
    Ok(if duration.subsec_nanos() > 0 {
        secs + 1
    } else {
        secs
    })
}

/// Formats whole seconds the way a person would write them: `45s`, `5m`, `1h30m`, `2h0m5s`.
pub fn format_secs(secs: u64) -> String {
    Secs(secs).to_string()
}

/// Formats milliseconds as Sidekiq's histogram bounds read best: `20ms`, `1.1s`, `5.75s`,
/// `5m35s`.
pub fn format_millis(ms: u64) -> String {
    match (ms / 1000, ms % 1000) {
        (secs, 0) => format_secs(secs),
        (0, ms) => format!("{ms}ms"),
        (secs, frac) => {
            let frac = format!("{frac:03}");
            format!("{secs}.{}s", frac.trim_end_matches('0'))
        }
    }
}

/// Display adapter for a number of seconds; see [`format_secs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secs(pub u64);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m, s) = (self.0 / 3600, self.0 / 60 % 60, self.0 % 60);
        match (h, m, s) {
            (0, 0, s) => write!(f, "{s}s"),
            (0, m, 0) => write!(f, "{m}m"),
            (0, m, s) => write!(f, "{m}m{s}s"),
            (h, 0, 0) => write!(f, "{h}h"),
            (h, m, 0) => write!(f, "{h}h{m}m"),
            (h, m, s) => write!(f, "{h}h{m}m{s}s"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[rstest]
    #[case("90s", 90)]
    #[case("15m", 900)]
    #[case("1h30m", 5400)]
    #[case("1h 30m", 5400)]
    #[case("300", 300)]
    #[case(" 25 ", 25)]
    #[case("1.5s", 2)]
    #[case("1.5", 2)]
    #[case("0.25", 1)]
    #[case("90.0", 90)]
    #[case("250ms", 1)]
    #[case("0", 0)]
    #[case("+5m", 300)]
    fn parses(#[case] input: &str, #[case] secs: u64) {
        assert_eq!(parse_secs(input), Ok(secs));
    }

    #[rstest]
    #[case("")]
    #[case("5 minutes please")]
    #[case("-5s")]
    #[case("m")]
    #[case("1e3")]
    #[case("1.")]
    #[case(".5")]
    #[case("1.2.3")]
    #[case("1 Month")]
    #[case("1.333h")]
    #[case("1.5ns")]
    #[case("++5m")]
    #[case("+-5m")]
    fn rejects(#[case] input: &str) {
        let err = parse_secs(input).unwrap_err();
        assert!(
            err.to_string().contains("such as 90s, 15m or 1h30m"),
            "{err}"
        );
    }

    #[test]
    fn durations_beyond_a_century_are_refused_not_overflowed() {
        assert_eq!(parse("876000h"), Ok(MAX));
        for input in [
            "876001h",
            "18446744073709551615",
            "99999999999999999999",
            "99999999999999999999d",
        ] {
            let too_long = DurationError::TooLong {
                input: input.to_owned(),
            };
            assert_eq!(parse(input), Err(too_long.clone()));
            assert_eq!(
                too_long.to_string(),
                format!("duration {input:?} is too long: at most 100 years (876000h)")
            );
        }
    }

    #[test]
    fn iso_8601_durations_are_named_with_what_to_write() {
        for input in ["PT5M", "PT1H30M", "P1D", "PT0.5S", "pt10m"] {
            assert_eq!(
                parse(input),
                Err(DurationError::Iso8601 {
                    input: input.to_owned()
                }),
                "{input}"
            );
        }
        assert!(
            DurationError::Iso8601 {
                input: "PT5M".into()
            }
            .to_string()
            .ends_with("write units as Kubernetes and Go do, as in 5m or 1h30m")
        );
        // Not ISO 8601: read (or refused) as before.
        assert!(matches!(parse("P"), Err(DurationError::Invalid { .. })));
        assert!(matches!(
            parse("Pending"),
            Err(DurationError::Invalid { .. })
        ));
    }

    #[test]
    fn months_are_refused_with_minutes_suggested() {
        for input in ["5M", "15M", "1h5M", "1M30s", "15 M"] {
            assert_eq!(
                parse(input).unwrap_err().to_string(),
                format!(
                    "invalid duration {input:?}: M is not a unit (months are not durations Kubernetes knows); minutes are m, as in 15m"
                )
            );
        }
    }

    #[rstest]
    #[case(0, "0s")]
    #[case(45, "45s")]
    #[case(300, "5m")]
    #[case(350, "5m50s")]
    #[case(5400, "1h30m")]
    #[case(7205, "2h0m5s")]
    fn formats(#[case] secs: u64, #[case] text: &str) {
        assert_eq!(format_secs(secs), text);
    }

    #[test]
    fn milliseconds_read_as_bounds() {
        assert_eq!(format_millis(20), "20ms");
        assert_eq!(format_millis(1100), "1.1s");
        assert_eq!(format_millis(5750), "5.75s");
        assert_eq!(format_millis(335_000), "5m35s");
    }

    proptest! {
        #[test]
        fn format_round_trips(secs in 0u64..10_000_000) {
            prop_assert_eq!(parse_secs(&format_secs(secs)), Ok(secs));
        }

        #[test]
        fn any_input_reads_back_or_names_what_is_accepted(input in ".{0,40}") {
            match parse_secs(&input) {
                // What was read is what the webhook will write back.
                Ok(secs) => {
                    prop_assert!(secs <= MAX.as_secs());
                    prop_assert_eq!(parse_secs(&format_secs(secs)), Ok(secs));
                }
                Err(error) => {
                    let message = error.to_string();
                    prop_assert!(message.contains(&format!("{input:?}")), "{}", message);
                    prop_assert!(
                        message.contains(ACCEPTED)
                            || message.contains("at most 100 years")
                            || message.contains("minutes are m"),
                        "{}", message
                    );
                }
            }
        }
    }
}
