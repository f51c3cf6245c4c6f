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

/// The deadline a request asks for: its `timeout` query parameter, capped at [`MAX`].
pub fn from_query(query: Option<&str>) -> Result<Duration, BadTimeout> {
    let Some(value) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == "timeout").then_some(value)
        })
    else {
        return Ok(MAX);
    };
    let decoded = value.replace("%C2%B5", "µ").replace("%c2%b5", "µ");
    parse_go_duration(&decoded)
        .map(|d| d.min(MAX))
        .ok_or_else(|| BadTimeout(value.to_owned()))
}

/// Parses Go's `time.Duration` text: a sequence of decimal numbers with units `ns`, `us`/`µs`,
/// `ms`, `s`, `m`, `h` (`10s`, `1.5s`, `1m30s`). Zero or negative durations are refused: a
/// request with no time left cannot be answered in time.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * scale;
    }
    (total > 0.0 && total.is_finite()).then(|| Duration::from_secs_f64(total.min(1e9)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        let ms = Duration::from_millis;
        assert_eq!(parse_go_duration("10s"), Some(ms(10_000)));
        assert_eq!(parse_go_duration("1.5s"), Some(ms(1500)));
        assert_eq!(parse_go_duration("1m0s"), Some(ms(60_000)));
        assert_eq!(parse_go_duration("250ms"), Some(ms(250)));
        assert_eq!(parse_go_duration("300µs"), Some(Duration::from_micros(300)));
        for bad in ["", "10", "s", "abc", "5x", "0s", "-1s", "1..2s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_query_parameter_is_found_and_capped() {
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
        assert_eq!(
            from_query(Some("timeout=soon")).unwrap_err().to_string(),
            "query parameter timeout=\"soon\" is not a duration; expected a Go duration such as 5s, 1500ms or 1m0s"
        );
    }
}
