//! Errors in one line, the way operators read them in a log or a terminal.

use std::error::Error;

/// `text` cut to `max` characters, the last one `…`, on a character boundary: messages quote
/// values of any length, and an admission warning holds 256 characters.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`): messages quote manifests and
/// Redis records, and a newline or a terminal escape sequence in a value must not reach a
/// terminal or a CI log as such (a forged line, a cleared screen, a window title set by whoever
/// can enqueue a job), nor an admission warning, which the API server drops when it holds one.
pub fn printable(text: String) -> String {
    // Control characters are C0 and DEL (single bytes) and C1 (U+0080–U+009F, led by 0xC2 in
    // UTF-8): a byte scan rules most texts out without decoding them, as every finding and
    // note of every admission passes here.
    let suspect = text.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2);
    if !suspect || !text.chars().any(char::is_control) {
        return text;
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// [`printable`] line by line: a message's own line breaks (an error's hint on the next line)
/// kept, every other control character escaped.
pub fn printable_lines(text: String) -> String {
    if !text.contains('\n') {
        return printable(text);
    }
    text.split('\n')
        .map(|line| printable(line.to_owned()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `value` quoted (`"abc"`), its first `max` characters only and `…` after the quote when it
/// is longer: what was written, readable, and short.
pub(crate) fn quoted(value: &str, max: usize) -> String {
    if value.chars().count() <= max {
        return format!("{value:?}");
    }
    let cut: String = value.chars().take(max).collect();
    format!("{cut:?}…")
}

/// `context: cause: root cause`. A cause whose text the outer message already contains is not
/// repeated (some libraries, redis-rs's I/O errors among them, fold their source into their own
/// message).
pub fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A YAML parse error as users read it: the parser's message and position, without its
/// excerpt of the text (which may be secret) or the hints it gives programmers (which option or
/// function to use instead).
#[derive(Debug)]
pub struct YamlError(String);

impl YamlError {
    /// The user's reading of `error`.
    pub fn new(error: &serde_saphyr::Error) -> Self {
        const HINTS: [(&str, &str); 3] = [
            (", set DuplicateKeyPolicy in Options if acceptable", ""),
            (
                "; use from_str_multiple or from_str_multiple_with_options",
                " (one document is expected here)",
            ),
            (
                "; use Option<String>",
                " (quote a key such as null, ~ or an empty one)",
            ),
        ];
        if let serde_saphyr::Error::Budget { breach, location } = error.without_snippet() {
            return YamlError(format!(
                "line {} column {}: {}",
                location.line(),
                location.column(),
                budget_breach(breach)
            ));
        }
        // Without the parser's excerpt of the lines around the error: they may hold a Secret's
        // data or a kubeconfig's token (kubectl, too, names only the line).
        let mut text = error.without_snippet().to_string();
        for (hint, replacement) in HINTS {
            text = text.replace(hint, replacement);
        }
        YamlError(text)
    }
}

/// A parser limit in words: the parser's own text is its `Debug` form, and the excerpt it
/// draws is cropped with columns counted from the crop, not the line.
fn budget_breach(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach;
    match breach {
        BudgetBreach::Depth { depth } => format!(
            "lists and mappings nested more than {} deep; no Kubernetes object nests so deep",
            depth.saturating_sub(1)
        ),
        BudgetBreach::Aliases { aliases } => {
            format!(
                "more than {} aliases (*name); expand them",
                aliases.saturating_sub(1)
            )
        }
        BudgetBreach::Documents { documents } => {
            format!("more than {} documents", documents.saturating_sub(1))
        }
        _ => "too large or complex to read (a limit of the YAML reader was reached)".to_owned(),
    }
}

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for YamlError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_stay_lines_and_nothing_else_passes() {
        assert_eq!(
            printable_lines("forbidden: \u{1b}[2J\n  your RBAC role needs: x".to_owned()),
            "forbidden: \\u{1b}[2J\n  your RBAC role needs: x"
        );
        assert_eq!(printable_lines("a\rb".to_owned()), "a\\rb");
    }

    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        let plain = "wait 5m — «quoted» © ok";
        assert_eq!(printable(plain.to_owned()), plain);
        assert_eq!(
            printable("a\nb\u{1b}[2K\u{7f}\u{85}©".to_owned()),
            "a\\nb\\u{1b}[2K\\u{7f}\\u{85}©"
        );
    }

    #[test]
    fn a_parser_limit_is_said_in_words() {
        let mut options = serde_saphyr::options::Options::default();
        let mut budget = serde_saphyr::budget::Budget::default();
        budget.max_depth = 4;
        options.budget = Some(budget);
        let deep = format!("a: {}{}\n", "[".repeat(10), "]".repeat(10));
        let error =
            serde_saphyr::from_str_with_options::<serde_json::Value>(&deep, options).unwrap_err();
        let text = YamlError::new(&error).to_string();
        assert!(
            text.ends_with(
                ": lists and mappings nested more than 4 deep; no Kubernetes object nests so deep"
            ),
            "{text}"
        );
        assert!(text.starts_with("line 1 column "), "{text}");
    }

    #[test]
    fn yaml_errors_carry_no_hints_for_programmers() {
        let duplicate = serde_saphyr::from_str::<serde_json::Value>("a: 1\na: 2\n").unwrap_err();
        let text = YamlError::new(&duplicate).to_string();
        assert!(text.contains("duplicate mapping key: a"), "{text}");
        assert!(!text.contains("DuplicateKeyPolicy"), "{text}");
        let several = serde_saphyr::from_str::<serde_json::Value>("a: 1\n---\na: 2\n").unwrap_err();
        let text = YamlError::new(&several).to_string();
        assert!(text.contains("(one document is expected here)"), "{text}");
        assert!(!text.contains("from_str_multiple"), "{text}");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read policy file p.yaml")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("connect failed: refused")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn joins_causes_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(
            chain(&Outer(io())),
            "cannot read policy file p.yaml: no such file"
        );
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(chain(&Repeats(refused)), "connect failed: refused");
    }
}
