//! The `?timeout=` the API server appends to every admission call (`/mutate?timeout=5s`): a Go
//! `time.Duration` string. The webhook must answer within it; past it the API server has given
//! up and applies the webhook's `failurePolicy`.

use std::time::Duration;

/// The longest `timeoutSeconds` a webhook configuration may set; also the deadline of a request
/// that names none (a client other than the API server).
pub const MAX: Duration = Duration::from_secs(30);

/// A `timeout` parameter that is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "query parameter timeout={0:?} is not a duration; expected a Go duration such as 5s, 1500ms or 1m0s"
)]
pub struct BadTimeout(pub String);

/// The deadline a request asks for: its `timeout` query parameter (percent-decoded, as Go's
/// `url.ParseQuery` decodes it, except that `+` stays a plus sign: a Go duration may start
/// with one), capped at [`MAX`].
///
/// A zero or negative timeout is a valid Go duration, so it is not refused as malformed. The
/// API server never sends one (`timeoutSeconds` is 1 to 30), and a client that does has either
/// given up already or means "no timeout", as a zero does in Go's HTTP clients. Either way the
/// answer is computed at once, as for any request; only the waits that the deadline bounds
/// (the rest of the body, a turn for a large review) fall back to the cap [`MAX`], as when no
/// timeout is given, instead of failing a request that could still be answered.
pub fn from_query(query: Option<&str>) -> Result<Duration, BadTimeout> {
    let Some(value) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key).as_deref() == Some("timeout")).then_some(value)
        })
    else {
        return Ok(MAX);
    };
    let nanos = percent_decode(value)
        .as_deref()
        .and_then(parse_go_duration)
        .ok_or_else(|| BadTimeout(value.to_owned()))?;
    Ok(match u64::try_from(nanos) {
        Ok(positive) if positive > 0 => Duration::from_nanos(positive).min(MAX),
        _ => MAX,
    })
}

/// RFC 3986 percent-decoding of one query component into UTF-8 text. A `%` not followed by two
/// hex digits is kept as it is (Go refuses it; the duration parser then does); text that is not
/// UTF-8 once decoded is `None`.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| {
            bytes
                .get(at)
                .and_then(|b| char::from(*b).to_digit(16))
                .and_then(|d| u8::try_from(d).ok())
        };
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high << 4) | low);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Nanoseconds per unit of Go's `time.ParseDuration`.
const UNITS: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000), // U+00B5 micro sign
    ("μs", 1_000), // U+03BC Greek small letter mu
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses Go's `time.Duration` text exactly as `time.ParseDuration` does, into nanoseconds:
/// an optional sign, then a sequence of decimal numbers (`1`, `1.5`, `.5`, `1.`), each with a
/// unit `ns`, `us`/`µs`/`μs`, `ms`, `s`, `m` or `h` (`10s`, `-1.5h`, `1h2m3.5s`); a bare `0`
/// (or `+0`, `-0`) needs no unit. Durations beyond Go's range (about 292 years) are refused,
/// as Go refuses them.
pub fn parse_go_duration(text: &str) -> Option<i64> {
    const LIMIT: u64 = 1 << 63;
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        // [0-9]*
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_digits, after) = rest.split_at(int_end);
        rest = after;
        // (\.[0-9]*)?
        let mut frac_digits = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_end = after_dot
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after_dot.len());
            (frac_digits, rest) = after_dot.split_at(frac_end);
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return None;
        }
        // The unit: up to the next digit or dot.
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let (unit, after) = rest.split_at(unit_end);
        rest = after;
        let scale = UNITS.iter().find(|(name, _)| *name == unit)?.1;
        let whole: u64 = if int_digits.is_empty() {
            0
        } else {
            // More digits than fit is Go's overflow error too.
            int_digits.parse().ok()?
        };
        let mut value = whole.checked_mul(scale).filter(|v| *v <= LIMIT)?;
        // Go keeps the fraction's first digits that fit in 63 bits and converts through f64;
        // eighteen digits are more than any unit needs for nanosecond precision.
        let kept = &frac_digits[..frac_digits.len().min(18)];
        if !kept.is_empty() {
            let fraction: u64 = kept.parse().ok()?;
            let divisor = 10f64.powi(i32::try_from(kept.len()).ok()?);
            // Truncated toward zero, as Go's uint64 conversion truncates.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let nanos = (fraction as f64 * (scale as f64 / divisor)) as u64;
            value = value.checked_add(nanos).filter(|v| *v <= LIMIT)?;
        }
        total = total.checked_add(value).filter(|v| *v <= LIMIT)?;
    }
    if negative {
        // Down to -(1 << 63), whose magnitude does not fit a positive i64.
        0i64.checked_sub_unsigned(total)
    } else {
        i64::try_from(total).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;
    const S: i64 = 1_000 * MS;

    #[test]
    fn go_durations_parse() {
        for (text, nanos) in [
            ("10s", 10 * S),
            ("1.5s", 1500 * MS),
            ("1m0s", 60 * S),
            ("250ms", 250 * MS),
            ("300µs", 300_000),
            ("300μs", 300_000),
            ("300us", 300_000),
            ("7ns", 7),
            ("1h2m3.5s", 3723 * S + 500 * MS),
            (".5s", 500 * MS),
            ("1.s", S),
            ("0", 0),
            ("+0", 0),
            ("-0", 0),
            ("0s", 0),
            ("0.000s", 0),
            ("+5s", 5 * S),
            ("-1.5h", -5400 * S),
            ("2562047h47m16.854775807s", i64::MAX),
            ("-2562047h47m16.854775808s", i64::MIN),
            // Go keeps the first digits of a long fraction.
            ("1.0000000000000000000000001s", S),
        ] {
            assert_eq!(parse_go_duration(text), Some(nanos), "{text}");
        }
        for bad in [
            "",
            "+",
            "-",
            "10",
            "s",
            ".s",
            "-.s",
            "abc",
            "5x",
            "1..2s",
            "5 s",
            " 5s",
            "5s ",
            "5S",
            "00",
            "1sec",
            "2562047h47m16.854775808s",
            "9223372036854775808ns",
            "99999999999999999999s",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_query_parameter_is_found_percent_decoded_and_capped() {
        assert_eq!(from_query(None), Ok(MAX));
        assert_eq!(from_query(Some("timeout=5s")), Ok(Duration::from_secs(5)));
        assert_eq!(
            from_query(Some("a=b&timeout=2s")),
            Ok(Duration::from_secs(2))
        );
        assert_eq!(from_query(Some("timeout=10m")), Ok(MAX));
        assert_eq!(
            from_query(Some("timeout=500%C2%B5s")),
            Ok(Duration::from_micros(500))
        );
        assert_eq!(from_query(Some("timeout=%35s")), Ok(Duration::from_secs(5)));
        assert_eq!(
            from_query(Some("timeout=1%2e5s")),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(from_query(Some("%74imeout=3s")), Ok(Duration::from_secs(3)));
        assert_eq!(from_query(Some("timeout=+5s")), Ok(Duration::from_secs(5)));
        assert_eq!(
            from_query(Some("timeout=%2B5s")),
            Ok(Duration::from_secs(5))
        );
        // Zero or negative: nothing left to wait for; answered at once, waits under the cap.
        for zero in ["timeout=0", "timeout=0s", "timeout=-5s", "timeout=-0"] {
            assert_eq!(from_query(Some(zero)), Ok(MAX), "{zero}");
        }
        for (query, value) in [
            ("timeout=soon", "soon"),
            ("timeout=", ""),
            ("timeout=%zz5s", "%zz5s"),
            ("timeout=5%", "5%"),
            ("timeout=%FF5s", "%FF5s"),
            ("timeout=5", "5"),
        ] {
            assert_eq!(
                from_query(Some(query)).unwrap_err().to_string(),
                format!(
                    "query parameter timeout={value:?} is not a duration; expected a Go duration such as 5s, 1500ms or 1m0s"
                ),
                "{query}"
            );
        }
    }
}
