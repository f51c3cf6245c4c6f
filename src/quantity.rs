//! Kubernetes resource quantities (`5m`, `16Mi`, `0.5`, `1e3`): their grammar and their value.
//!
//! The value matters twice: a policy's sidecar request must not exceed its limit (the API server
//! would refuse every injected pod), and the API server stores quantities in canonical form
//! (`0.5` becomes `500m`, `1024Mi` becomes `1Gi`), so a sidecar read back from the cluster is
//! compared by value, not by spelling.

use std::cmp::Ordering;
use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an invalid quantity is told.
const ACCEPTED: &str = "expected a Kubernetes quantity such as 10m, 16Mi or 0.5";

/// A quantity as written, with its value.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Quantity {
    text: String,
    #[serde(skip)]
    nanos: i128,
}

/// A string that is not a quantity, or one too large to compare.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {text:?}: {why}")]
pub struct QuantityError {
    /// The text given.
    pub text: String,
    /// What is wrong, and what is accepted.
    pub why: &'static str,
}

impl Quantity {
    /// Reads `text` by Kubernetes' grammar: a signed decimal, then an optional binary suffix
    /// (`Ki`…`Ei`), decimal suffix (`n u m k M G T P E`) or decimal exponent (`e3`, `E-2`).
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let nanos = nanos(text).map_err(|why| QuantityError {
            text: text.to_owned(),
            why,
        })?;
        Ok(Self {
            text: text.to_owned(),
            nanos,
        })
    }

    /// The quantity as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it is below zero (no container resource may be).
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(text) => Quantity::parse(&text).map_err(de::Error::custom),
            Value::Number(n) => Quantity::parse(&n.to_string()).map_err(de::Error::custom),
            other => Err(de::Error::custom(format!(
                "invalid quantity {other}: {ACCEPTED}"
            ))),
        }
    }
}

/// Whether two quantities of a container's resources are the same as the API server stores them:
/// it rounds resource quantities up to thousandths (`100u` becomes `1m`).
pub fn same_resource_value(a: &str, b: &str) -> bool {
    let millis = |q: &Quantity| {
        let nanos = q.nanos;
        nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0)
    };
    matches!((Quantity::parse(a), Quantity::parse(b)), (Ok(a), Ok(b)) if millis(&a) == millis(&b))
}

/// The value of `text` in billionths, rounded up as the API server rounds (it keeps nine
/// decimals).
fn nanos(text: &str) -> Result<i128, &'static str> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let number_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(ACCEPTED);
    }
    let (power_of_ten, power_of_two) = scale(suffix).ok_or(ACCEPTED)?;
    let significant = format!("{whole}{fraction}");
    let significant = significant.trim_start_matches('0');
    let mantissa: u128 = if significant.is_empty() {
        0
    } else {
        significant.parse().map_err(|_| TOO_LARGE)?
    };
    let binary = 2_u128.checked_pow(power_of_two).ok_or(TOO_LARGE)?;
    let mut value = mantissa.checked_mul(binary).ok_or(TOO_LARGE)?;
    let exponent = i64::from(power_of_ten) + 9 - fraction.len() as i64;
    let ten_to = |power: i64| {
        u32::try_from(power)
            .ok()
            .and_then(|power| 10_u128.checked_pow(power))
    };
    value = if exponent >= 0 {
        ten_to(exponent)
            .and_then(|factor| value.checked_mul(factor))
            .ok_or(TOO_LARGE)?
    } else {
        // A remainder below a billionth rounds up to one.
        match ten_to(-exponent) {
            Some(divisor) => value.div_ceil(divisor),
            None => u128::from(value > 0),
        }
    };
    let value = i128::try_from(value).map_err(|_| TOO_LARGE)?;
    Ok(if negative { -value } else { value })
}

const TOO_LARGE: &str = "too large to compare (at most 38 digits of billionths)";

/// The suffix's multiplier as powers of ten and of two.
fn scale(suffix: &str) -> Option<(i32, u32)> {
    let binary = |power| Some((0, power));
    match suffix {
        "" => Some((0, 0)),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        "n" => Some((-9, 0)),
        "u" => Some((-6, 0)),
        "m" => Some((-3, 0)),
        "k" => Some((3, 0)),
        "M" => Some((6, 0)),
        "G" => Some((9, 0)),
        "T" => Some((12, 0)),
        "P" => Some((15, 0)),
        "E" => Some((18, 0)),
        exponent => {
            let power = exponent.strip_prefix(['e', 'E'])?;
            let digits = power.strip_prefix(['+', '-']).unwrap_or(power);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Beyond ±38 no i128 of billionths holds it; such a quantity is refused as too large.
            power.parse::<i32>().ok().map(|p| (p.clamp(-60, 60), 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("10m", 10_000_000)]
    #[case("16Mi", 16 * (1 << 20) * 1_000_000_000)]
    #[case("0.5", 500_000_000)]
    #[case("1e3", 1_000_000_000_000)]
    #[case("1E-3", 1_000_000)]
    #[case("100", 100_000_000_000)]
    #[case("+1k", 1_000_000_000_000)]
    #[case("-5m", -5_000_000)]
    #[case("0", 0)]
    #[case("0.1n", 1)]
    #[case(".5Ki", 512_000_000_000)]
    #[case("5.", 5_000_000_000)]
    fn values(#[case] text: &str, #[case] nanos: i128) {
        assert_eq!(Quantity::parse(text).unwrap().nanos, nanos, "{text}");
    }

    #[rstest]
    #[case("lots")]
    #[case("10mi")]
    #[case("")]
    #[case(".")]
    #[case("1.2.3")]
    #[case("1e")]
    #[case("Mi")]
    #[case("1 Mi")]
    fn invalid(#[case] text: &str) {
        let err = Quantity::parse(text).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid quantity {text:?}: expected a Kubernetes quantity such as 10m, 16Mi or 0.5"
            )
        );
    }

    #[test]
    fn a_quantity_too_large_to_compare_says_so() {
        let err = Quantity::parse("1e40").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid quantity \"1e40\": too large to compare (at most 38 digits of billionths)"
        );
    }

    #[rstest]
    #[case("0.5", "500m")]
    #[case("1024Mi", "1Gi")]
    #[case("1000m", "1")]
    #[case("1e3", "1k")]
    fn the_api_servers_canonical_forms_have_the_same_resource_value(
        #[case] a: &str,
        #[case] b: &str,
    ) {
        assert!(same_resource_value(a, b));
    }

    #[test]
    fn resource_values_compare_in_thousandths_rounded_up() {
        assert!(same_resource_value("100u", "1m"));
        assert!(same_resource_value("0.5", "500m"));
        assert!(!same_resource_value("1m", "2m"));
    }

    #[test]
    fn different_values_and_non_quantities_differ() {
        assert!(!same_resource_value("16Mi", "16M"));
        assert!(!same_resource_value("true", "true"));
    }
}
