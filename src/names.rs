//! Kubernetes' rules for names, for the names that come from flags and policy documents: one
//! the API server would refuse must be refused where it is written, not at apply time.

/// `Ok` when `text` is a DNS label: RFC 1123 (namespaces, most objects), or with
/// `letter_first` RFC 1035 (Services); else why not.
pub fn dns_label(text: &str, letter_first: bool) -> Result<(), &'static str> {
    let bytes = text.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return Err("it is empty");
    };
    if bytes.len() > 63 {
        return Err("it is longer than 63 characters");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return Err("it has a character other than a-z, 0-9 and '-'");
    }
    if (letter_first && !first.is_ascii_lowercase()) || *first == b'-' || *last == b'-' {
        return Err("it starts or ends with a character it may not");
    }
    Ok(())
}

/// Whether `text` is a lowercase RFC 1123 subdomain: dot-separated DNS labels, at most 253
/// characters (name prefixes such as `example.com/`).
pub fn is_dns_subdomain(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| dns_label(label, false).is_ok())
}

/// Whether `text` is the name part of a Kubernetes qualified name (a label key's name, a label
/// value, an extended resource's name): 1–63 characters of letters, digits, `-`, `_` and `.`,
/// starting and ending with a letter or digit.
pub fn is_qualified_name_part(text: &str) -> bool {
    let bytes = text.as_bytes();
    matches!((bytes.first(), bytes.last()), (Some(a), Some(z)) if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric())
        && text.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        assert_eq!(dns_label("sidekiq-guard", true), Ok(()));
        assert_eq!(dns_label("1ops", false), Ok(()));
        assert_eq!(
            dns_label("1ops", true),
            Err("it starts or ends with a character it may not")
        );
        assert_eq!(dns_label("", false), Err("it is empty"));
        assert_eq!(
            dns_label("Ops", false),
            Err("it has a character other than a-z, 0-9 and '-'")
        );
        assert_eq!(
            dns_label(&"a".repeat(64), false),
            Err("it is longer than 63 characters")
        );
        assert!(is_dns_subdomain("example.com"));
        assert!(!is_dns_subdomain("example..com"));
        assert!(!is_dns_subdomain("-x.com"));
    }
}
