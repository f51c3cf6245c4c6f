//! dumb-init's command line, read as its getopt reads it (`+hvVcr:`: grouped short options,
//! long ones by any unambiguous prefix, options up to the first operand or `--`), for what
//! decides where signals go: `-c`/`--single-child`, `DUMB_INIT_SETSID`, and a `--rewrite` of
//! SIGTSTP. Every reader of a dumb-init command line — finding the command it runs, whether
//! signals reach the whole group, what a SIGTSTP to it does — asks this module.

use crate::detect::LazyEnv;

/// SIGTSTP's number on Linux, as `--rewrite` names signals.
const SIGTSTP: i64 = 20;

/// What dumb-init's options say about signals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// `-c`/`--single-child`: signals go to the child alone, with no session of its own.
    pub(crate) single_child: bool,
    /// The signal a `--rewrite 20:N` passes SIGTSTP on as (0 drops it).
    pub(crate) tstp_as: Option<i64>,
    /// Where the command dumb-init runs starts among the words read: past the options and a
    /// `--`.
    pub(crate) operand: usize,
}

/// What a SIGTSTP sent to dumb-init does to the process it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tstp {
    /// Passed on as SIGTSTP: Sidekiq quiets.
    PassedOn,
    /// Passed on as SIGSTOP (setsid mode: in a group of its own a child would ignore a stop
    /// signal it does not handle), which freezes Sidekiq.
    Stops,
    /// Dropped (`--rewrite 20:0`).
    Dropped,
    /// Passed on as another signal (`--rewrite 20:N`).
    Rewritten,
    /// The manifest cannot tell: `DUMB_INIT_SETSID` comes from elsewhere (a Secret, an
    /// `envFrom`).
    Unknown,
}

impl Options {
    /// Reads the options among `words`, the words after `dumb-init` itself.
    pub(crate) fn parse<S: AsRef<str>>(words: &[S]) -> Self {
        let mut options = Options::default();
        let word = |at: usize| words.get(at).map(AsRef::as_ref);
        let mut at = 0;
        while let Some(option) = word(at).filter(|w| w.starts_with('-') && *w != "-") {
            at += 1;
            if option == "--" {
                break;
            }
            if let Some(long) = option.strip_prefix("--") {
                let (name, value) = long
                    .split_once('=')
                    .map_or((long, None), |(n, v)| (n, Some(v)));
                if long_option(name) == Some("single-child") {
                    options.single_child = true;
                } else if long_option(name) == Some("rewrite") {
                    let text = value.or_else(|| {
                        at += 1;
                        word(at - 1)
                    });
                    options.rewrite(text);
                }
                continue;
            }
            for (index, flag) in option.char_indices().skip(1) {
                match flag {
                    'c' => options.single_child = true,
                    // The rest of the group is its value, else the next word.
                    'r' => {
                        let rest = &option[index + 1..];
                        let text = if rest.is_empty() {
                            at += 1;
                            word(at - 1)
                        } else {
                            Some(rest)
                        };
                        options.rewrite(text);
                        break;
                    }
                    _ => {}
                }
            }
        }
        options.operand = at.min(words.len());
        options
    }

    /// Whether dumb-init runs its child in a session of its own (its default setsid mode),
    /// where it signals the child's whole process group: not with `-c` nor with
    /// `DUMB_INIT_SETSID=0` in `env`; `None` when the manifest cannot tell.
    pub(crate) fn setsid(&self, env: &LazyEnv<'_>) -> Option<bool> {
        const VARIABLE: &str = "DUMB_INIT_SETSID";
        if self.single_child {
            return Some(false);
        }
        match env.get(VARIABLE) {
            Some(value) => Some(value != "0"),
            None if env.unset(VARIABLE) => Some(true),
            None => None,
        }
    }

    /// What a SIGTSTP sent to dumb-init does to its child.
    pub(crate) fn tstp(&self, env: &LazyEnv<'_>) -> Tstp {
        match self.tstp_as {
            Some(SIGTSTP) => Tstp::PassedOn,
            Some(0) => Tstp::Dropped,
            Some(_) => Tstp::Rewritten,
            None => match self.setsid(env) {
                Some(true) => Tstp::Stops,
                Some(false) => Tstp::PassedOn,
                None => Tstp::Unknown,
            },
        }
    }

    /// `s:r`, read as dumb-init's `sscanf("%d:%d")` reads it.
    fn rewrite(&mut self, text: Option<&str>) {
        if let Some((from, to)) = text.and_then(|text| text.split_once(':'))
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
    #[case(&["--", "sidekiq"], false, None, 1)]
    #[case(&["-v", "sidekiq", "-c", "5"], false, None, 1)]
    #[case(&["-c", "sidekiq"], true, None, 1)]
    #[case(&["-vc", "sidekiq"], true, None, 1)]
    #[case(&["--single-child", "--", "sidekiq"], true, None, 2)]
    #[case(&["--single", "sidekiq"], true, None, 1)]
    #[case(&["-r", "15:2", "sidekiq"], false, None, 2)]
    #[case(&["-r", "20:19", "sidekiq"], false, Some(19), 2)]
    #[case(&["-vr20:20", "sidekiq"], false, Some(20), 1)]
    #[case(&["-vr", "20:0", "sidekiq"], false, Some(0), 2)]
    #[case(&["-c", "--rewrite=20:15", "sidekiq"], true, Some(15), 2)]
    #[case(&["--rew", "020:20", "sidekiq"], false, Some(20), 2)]
    #[case(&["-", "sidekiq"], false, None, 0)]
    #[case(&["-r"], false, None, 1)]
    fn options_are_read_as_getopt_reads_them(
        #[case] words: &[&str],
        #[case] single_child: bool,
        #[case] tstp_as: Option<i64>,
        #[case] operand: usize,
    ) {
        assert_eq!(
            Options::parse(words),
            Options {
                single_child,
                tstp_as,
                operand
            }
        );
    }

    /// `-c` and `DUMB_INIT_SETSID=0` turn setsid mode off; a rewrite of SIGTSTP decides alone;
    /// a variable the manifest does not show leaves it open.
    #[rstest]
    #[case(&[], serde_json::json!([]), Some(true), Tstp::Stops)]
    #[case(&["-c"], serde_json::json!([]), Some(false), Tstp::PassedOn)]
    #[case(&[], serde_json::json!([{"name": "DUMB_INIT_SETSID", "value": "0"}]), Some(false), Tstp::PassedOn)]
    #[case(&[], serde_json::json!([{"name": "DUMB_INIT_SETSID", "value": "1"}]), Some(true), Tstp::Stops)]
    #[case(&[], serde_json::json!([{"name": "DUMB_INIT_SETSID"}]), Some(true), Tstp::Stops)]
    #[case(&[], serde_json::json!([{"name": "DUMB_INIT_SETSID", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]), None, Tstp::Unknown)]
    #[case(&["-r", "20:20"], serde_json::json!([]), Some(true), Tstp::PassedOn)]
    #[case(&["-c", "-r", "20:0"], serde_json::json!([]), Some(false), Tstp::Dropped)]
    #[case(&["--rewrite=20:19"], serde_json::json!([]), Some(true), Tstp::Rewritten)]
    fn setsid_mode_and_what_sigtstp_does(
        #[case] words: &[&str],
        #[case] env: serde_json::Value,
        #[case] setsid: Option<bool>,
        #[case] tstp: Tstp,
    ) {
        let container = serde_json::json!({"name": "worker", "env": env});
        let env = LazyEnv::new(&container);
        let options = Options::parse(words);
        assert_eq!(options.setsid(&env), setsid);
        assert_eq!(options.tstp(&env), tstp);
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
