//! dumb-init's command line, read as its getopt reads it (`+hvVcr:`: grouped short options,
//! long ones by any unambiguous prefix, options up to the first operand or `--`), for what
//! decides where signals go: `-c`/`--single-child`, and a `--rewrite` of SIGTSTP.

/// SIGTSTP's number on Linux, as `--rewrite` names signals.
const SIGTSTP: i64 = 20;

/// What dumb-init's options say about signals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// `-c`/`--single-child`: signals go to the child alone, with no session of its own.
    pub(crate) single_child: bool,
    /// The signal a `--rewrite 20:N` passes SIGTSTP on as (0 drops it).
    pub(crate) tstp_as: Option<i64>,
}

impl Options {
    /// Reads the options among `words`, the words after `dumb-init` itself.
    pub(crate) fn parse<S: AsRef<str>>(words: &[S]) -> Self {
        let mut options = Options::default();
        let mut words = words.iter().map(AsRef::as_ref);
        while let Some(word) = words
            .next()
            .filter(|w| w.starts_with('-') && *w != "-" && *w != "--")
        {
            if let Some(long) = word.strip_prefix("--") {
                let (name, value) = long
                    .split_once('=')
                    .map_or((long, None), |(n, v)| (n, Some(v)));
                match long_option(name) {
                    Some("single-child") => options.single_child = true,
                    Some("rewrite") => {
                        if let Some(text) = value.or_else(|| words.next()) {
                            options.rewrite(text);
                        }
                    }
                    _ => {}
                }
                continue;
            }
            for (at, flag) in word.char_indices().skip(1) {
                match flag {
                    'c' => options.single_child = true,
                    // The rest of the group is its value, else the next word.
                    'r' => {
                        let rest = &word[at + 1..];
                        let text = if rest.is_empty() {
                            words.next()
                        } else {
                            Some(rest)
                        };
                        if let Some(text) = text {
                            options.rewrite(text);
                        }
                        break;
                    }
                    _ => {}
                }
            }
        }
        options
    }

    /// `s:r`, read as dumb-init's `sscanf("%d:%d")` reads it.
    fn rewrite(&mut self, text: &str) {
        if let Some((from, to)) = text.split_once(':')
            && c_int(from) == Some(SIGTSTP)
        {
            self.tstp_as = c_int(to);
        }
    }
}

/// The dumb-init long option `name` abbreviates, as getopt_long reads it: an exact name, or a
/// prefix of only one.
fn long_option(name: &str) -> Option<&'static str> {
    const LONG: [&str; 5] = ["help", "single-child", "rewrite", "verbose", "version"];
    if let Some(exact) = LONG.iter().find(|l| **l == name) {
        return Some(exact);
    }
    let mut matching = LONG
        .iter()
        .filter(|l| !name.is_empty() && l.starts_with(name));
    match (matching.next(), matching.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

/// A number as C's `%d` reads it: leading blanks, a sign, decimal digits (`020` is 20).
fn c_int(text: &str) -> Option<i64> {
    let text = text.trim_start();
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    let sign_len = text.len() - digits.len();
    text[..sign_len + end].parse().ok()
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(&["--", "sidekiq"], false, None)]
    #[case(&["-v", "sidekiq", "-c", "5"], false, None)]
    #[case(&["-c", "sidekiq"], true, None)]
    #[case(&["-vc", "sidekiq"], true, None)]
    #[case(&["--single-child", "--", "sidekiq"], true, None)]
    #[case(&["--single", "sidekiq"], true, None)]
    #[case(&["-r", "15:2", "sidekiq"], false, None)]
    #[case(&["-r", "20:19", "sidekiq"], false, Some(19))]
    #[case(&["-vr20:20", "sidekiq"], false, Some(20))]
    #[case(&["-vr", "20:0", "sidekiq"], false, Some(0))]
    #[case(&["-c", "--rewrite=20:15", "sidekiq"], true, Some(15))]
    #[case(&["--rew", "020:20", "sidekiq"], false, Some(20))]
    fn options_are_read_as_getopt_reads_them(
        #[case] words: &[&str],
        #[case] single_child: bool,
        #[case] tstp_as: Option<i64>,
    ) {
        assert_eq!(
            Options::parse(words),
            Options {
                single_child,
                tstp_as
            }
        );
    }

    #[test]
    fn numbers_as_c_reads_them_and_long_options_by_prefix() {
        assert_eq!(c_int(" 020"), Some(20));
        assert_eq!(c_int("+7x"), Some(7));
        assert_eq!(c_int("-3"), Some(-3));
        assert_eq!(c_int("x"), None);
        assert_eq!(c_int(""), None);
        assert_eq!(long_option("rew"), Some("rewrite"));
        assert_eq!(long_option("verbose"), Some("verbose"));
        assert_eq!(long_option("ver"), None, "verbose or version");
        assert_eq!(long_option(""), None);
    }
}
