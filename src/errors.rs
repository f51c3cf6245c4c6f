//! Errors in one line, the way operators read them in a log or a terminal.

use std::error::Error;

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

#[cfg(test)]
mod tests {
    use super::*;

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
