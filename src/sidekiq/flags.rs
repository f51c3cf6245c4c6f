//! Sidekiq's command line, read the way Sidekiq's own option parser (Ruby's `OptionParser`) reads
//! it: `-t 25`, `-t25`, `--timeout 25`, `--timeout=25`, unambiguous abbreviations such as
//! `--time=25`, and clustered short flags such as `-vt25`.

use std::fmt;

/// The Sidekiq executable being run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `sidekiq`: one process.
    Sidekiq,
    /// `sidekiqswarm` (Sidekiq Enterprise): several processes per container, same flags.
    Swarm,
}

impl Program {
    /// Recognises the executable from a command word's last path component.
    pub fn from_basename(name: &str) -> Option<Self> {
        match name {
            "sidekiq" => Some(Self::Sidekiq),
            "sidekiqswarm" => Some(Self::Swarm),
            _ => None,
        }
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sidekiq => "sidekiq",
            Self::Swarm => "sidekiqswarm",
        })
    }
}

/// A queue given with `-q NAME[,WEIGHT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// Queue name.
    pub name: String,
    /// Weight, when it is a positive number (Sidekiq reads a weight with Ruby's `to_i`, and
    /// one that reads as 0 or less as none).
    pub weight: Option<u32>,
}

/// The options of a Sidekiq command line this project cares about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// The last `-t/--timeout`, as Sidekiq will take it.
    pub timeout: Option<Timeout>,
    /// `-c/--concurrency`.
    pub concurrency: Option<u32>,
    /// `-C/--config`: a file whose `timeout:` cannot be seen from the manifest.
    pub config: Option<String>,
    /// `-q/--queue`, in order.
    pub queues: Vec<Queue>,
    /// `-g/--tag`.
    pub tag: Option<String>,
    /// `-e/--environment`.
    pub environment: Option<String>,
    /// `-r/--require`.
    pub require: Option<String>,
    /// Options that could not be read.
    pub problems: Vec<FlagProblem>,
}

/// What the last `-t/--timeout` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timeout {
    /// Seconds.
    Seconds(u64),
    /// A variable that gets its value when the container starts (`$TIMEOUT` from a ConfigMap,
    /// say), as written: unseen here.
    AtRunTime(String),
    /// A value Sidekiq refuses (see [`Flags::problems`]): it would not start.
    Invalid,
}

impl Flags {
    /// `-t/--timeout` in seconds, when the command line shows it.
    pub fn timeout_secs(&self) -> Option<u64> {
        match self.timeout {
            Some(Timeout::Seconds(secs)) => Some(secs),
            _ => None,
        }
    }
}

/// A flag Sidekiq itself would reject, or whose value cannot be seen from the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagProblem {
    /// The flag as written, e.g. `-t` or `--timeout`.
    pub flag: String,
    /// The value as written, when there was one.
    pub value: Option<String>,
    /// What was wrong and what is accepted.
    pub reason: String,
    /// Sidekiq prints an error for it and starts all the same, without it (a feature Sidekiq
    /// 6.0 removed), rather than refusing to start.
    pub ignored: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Opt {
    Concurrency,
    Environment,
    Tag,
    Queue,
    Require,
    Timeout,
    Config,
    Logfile,
    Pidfile,
    Daemon,
    Switch,
}

/// Long options of Sidekiq 6–8, for `OptionParser`'s abbreviation matching.
const LONG: &[(&str, Opt)] = &[
    ("concurrency", Opt::Concurrency),
    ("daemon", Opt::Daemon),
    ("environment", Opt::Environment),
    ("tag", Opt::Tag),
    ("queue", Opt::Queue),
    ("require", Opt::Require),
    ("timeout", Opt::Timeout),
    ("verbose", Opt::Switch),
    ("config", Opt::Config),
    ("logfile", Opt::Logfile),
    ("pidfile", Opt::Pidfile),
    ("version", Opt::Switch),
    ("help", Opt::Switch),
];

fn short(c: char) -> Option<Opt> {
    Some(match c {
        'c' => Opt::Concurrency,
        'e' => Opt::Environment,
        'g' => Opt::Tag,
        'q' => Opt::Queue,
        'r' => Opt::Require,
        't' => Opt::Timeout,
        'C' => Opt::Config,
        'L' => Opt::Logfile,
        'P' => Opt::Pidfile,
        'd' => Opt::Daemon,
        'v' | 'V' | 'h' => Opt::Switch,
        _ => return None,
    })
}

impl Flags {
    /// Parses the arguments that follow `sidekiq`/`sidekiqswarm`, as Sidekiq receives them.
    pub fn parse(args: &[String]) -> Self {
        Self::parse_with(args, &|_| false)
    }

    /// Parses them where `at_run_time` tells which values are variables that get their value
    /// only when the container starts (what the analysis reads from the Sidekiq container's
    /// `env`): those are unseen, not invalid.
    pub fn parse_with(args: &[String], at_run_time: &dyn Fn(&str) -> bool) -> Self {
        let mut flags = Self::default();
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            if arg == "--" {
                break;
            }
            if let Some(long) = arg.strip_prefix("--") {
                flags.long(long, &mut rest, at_run_time);
            } else if let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.is_empty()) {
                flags.cluster(cluster, &mut rest, at_run_time);
            }
            // Sidekiq ignores positional arguments; so do we.
        }
        flags
    }

    fn long<'a>(
        &mut self,
        text: &str,
        rest: &mut impl Iterator<Item = &'a String>,
        at_run_time: &dyn Fn(&str) -> bool,
    ) {
        let (name, inline) = match text.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (text, None),
        };
        let flag = format!("--{name}");
        let matches: Vec<_> = match LONG.iter().find(|(long, _)| *long == name) {
            Some(exact) => vec![exact],
            None => LONG
                .iter()
                .filter(|(long, _)| long.starts_with(name))
                .collect(),
        };
        match matches.as_slice() {
            // `--verbose`, `--daemon`: no value to take, none to miss.
            [(_, opt @ (Opt::Switch | Opt::Daemon))] => {
                if inline.is_some() {
                    self.problem(flag, inline, "takes no value".into());
                } else if *opt == Opt::Daemon {
                    self.removed(flag, None, DAEMON_REMOVED);
                }
            }
            [(_, opt)] => {
                let value = inline.or_else(|| rest.next().cloned());
                self.apply(*opt, flag, value, at_run_time);
            }
            [] => self.problem(flag, None, "not an option Sidekiq knows".into()),
            several => {
                let names: Vec<_> = several
                    .iter()
                    .map(|(long, _)| format!("--{long}"))
                    .collect();
                self.problem(
                    flag,
                    None,
                    format!("ambiguous: it abbreviates {}", names.join(", ")),
                );
            }
        }
    }

    fn cluster<'a>(
        &mut self,
        cluster: &str,
        rest: &mut impl Iterator<Item = &'a String>,
        at_run_time: &dyn Fn(&str) -> bool,
    ) {
        for (i, c) in cluster.char_indices() {
            let flag = format!("-{c}");
            match short(c) {
                Some(Opt::Switch) => {}
                Some(Opt::Daemon) => self.removed(flag, None, DAEMON_REMOVED),
                Some(opt) => {
                    let attached = &cluster[i + c.len_utf8()..];
                    let value = if attached.is_empty() {
                        rest.next().cloned()
                    } else {
                        Some(attached.to_owned())
                    };
                    self.apply(opt, flag, value, at_run_time);
                    return;
                }
                None => {
                    self.problem(flag, None, "not an option Sidekiq knows".into());
                    return;
                }
            }
        }
    }

    fn apply(
        &mut self,
        opt: Opt,
        flag: String,
        value: Option<String>,
        at_run_time: &dyn Fn(&str) -> bool,
    ) {
        let Some(value) = value else {
            if opt == Opt::Timeout {
                self.timeout = Some(Timeout::Invalid);
            }
            self.problem(flag, None, "is missing its value".into());
            return;
        };
        // Sidekiq will see the variable's value, unknown here: nothing to reject.
        if matches!(opt, Opt::Timeout | Opt::Concurrency | Opt::Queue) && at_run_time(&value) {
            if opt == Opt::Timeout {
                self.timeout = Some(Timeout::AtRunTime(value));
            }
            return;
        }
        match opt {
            Opt::Timeout => match ruby_integer(&value) {
                Some(secs) if !super::accepts_timeout(secs) => {
                    self.timeout = Some(Timeout::Invalid);
                    self.problem(
                        flag,
                        Some(value),
                        "expected a positive whole number of seconds: Sidekiq refuses 0".into(),
                    );
                }
                Some(secs) if secs <= crate::duration::MAX.as_secs() => {
                    self.timeout = Some(Timeout::Seconds(secs));
                }
                // Sidekiq would take it and wait for ever; no grace period can cover it.
                found if found.is_some() || is_decimal(&value) => {
                    self.timeout = Some(Timeout::Invalid);
                    self.problem(
                        flag,
                        Some(value),
                        "too long: at most 100 years (3153600000 seconds)".into(),
                    );
                }
                _ => {
                    self.timeout = Some(Timeout::Invalid);
                    self.problem(
                        flag,
                        Some(value),
                        "expected a whole number of seconds".into(),
                    );
                }
            },
            Opt::Concurrency => match ruby_integer(&value).and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n > 0 => self.concurrency = Some(n),
                _ => self.problem(
                    flag,
                    Some(value),
                    "expected a positive whole number of threads".into(),
                ),
            },
            Opt::Queue => self.queues.push(parse_queue(&value)),
            Opt::Config => self.config = Some(value),
            Opt::Tag => self.tag = Some(value),
            Opt::Environment => self.environment = Some(value),
            Opt::Require => self.require = Some(value),
            Opt::Logfile => self.removed(
                flag,
                Some(value),
                "removed in Sidekiq 6.0, which logs only to stdout",
            ),
            Opt::Pidfile => self.removed(
                flag,
                Some(value),
                "removed in Sidekiq 6.0, which writes no pid file: a preStop that reads it finds no process to signal",
            ),
            Opt::Daemon | Opt::Switch => {}
        }
    }

    fn problem(&mut self, flag: String, value: Option<String>, reason: String) {
        self.problems.push(FlagProblem {
            flag,
            value,
            reason,
            ignored: false,
        });
    }

    /// A flag of a feature Sidekiq 6.0 removed: it says so and starts without it.
    fn removed(&mut self, flag: String, value: Option<String>, reason: &str) {
        self.problems.push(FlagProblem {
            flag,
            value,
            reason: reason.to_owned(),
            ignored: true,
        });
    }
}

const DAEMON_REMOVED: &str = "removed in Sidekiq 6.0, which no longer daemonizes";

/// Reads a number as Ruby's `Integer()` does, which is how Sidekiq reads `-t` and `-c`:
/// surrounding whitespace, a `+` sign, the prefixes `0x`, `0b`, `0o`, `0d` and a leading `0`
/// for octal, single underscores between digits (`1_000`). `None` for anything Ruby refuses,
/// and for negative values, which no timeout or thread count can be.
fn ruby_integer(text: &str) -> Option<u64> {
    let text = text.trim();
    let text = text.strip_prefix('+').unwrap_or(text);
    let prefix = text.get(..2).map(str::to_ascii_lowercase);
    let (radix, digits) = match prefix.as_deref() {
        Some("0x") => (16, &text[2..]),
        Some("0b") => (2, &text[2..]),
        Some("0o") => (8, &text[2..]),
        Some("0d") => (10, &text[2..]),
        // `010` is octal 8, and `0_10` too.
        _ if text.len() > 1 && text.starts_with('0') => {
            let rest = &text[1..];
            (8, rest.strip_prefix('_').unwrap_or(rest))
        }
        _ => (10, text),
    };
    let bytes = digits.as_bytes();
    let well_separated = bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && !digits.contains("__");
    if !well_separated {
        return None;
    }
    let plain: String = digits.chars().filter(|c| *c != '_').collect();
    u64::from_str_radix(&plain, radix).ok()
}

/// A decimal integer as Ruby writes it, whatever its size: digits, single underscores between
/// them, one optional `+` (a number too large for [`ruby_integer`] is still a number).
fn is_decimal(text: &str) -> bool {
    let text = text.trim();
    let digits = text.strip_prefix('+').unwrap_or(text);
    let bytes = digits.as_bytes();
    // A leading 0 makes it octal to Ruby: `08` is no number at all.
    let octal = bytes.len() > 1 && bytes[0] == b'0';
    bytes.first().is_some_and(u8::is_ascii_digit)
        && bytes.last().is_some_and(u8::is_ascii_digit)
        && bytes
            .iter()
            .all(|b| (b'0'..=if octal { b'7' } else { b'9' }).contains(b) || *b == b'_')
        && !digits.contains("__")
}

/// `-q NAME[,WEIGHT]` as Sidekiq reads it (`queue, weight = arg.split(",")`): any text starts,
/// fields after the second are dropped, and the weight is Ruby's `to_i` of the second.
fn parse_queue(text: &str) -> Queue {
    let mut fields = text.split(',');
    let name = fields.next().unwrap_or_default().to_owned();
    let weight = fields
        .next()
        .map(ruby_to_i)
        .filter(|w| *w > 0)
        .map(|w| u32::try_from(w).unwrap_or(u32::MAX));
    Queue { name, weight }
}

/// Ruby's `String#to_i`: leading whitespace, an optional sign, then the longest run of decimal
/// digits (single underscores between them); 0 when there is none. Saturates instead of
/// growing without bound.
fn ruby_to_i(text: &str) -> i64 {
    let text = text.trim_start();
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let mut value: i64 = 0;
    let mut previous_underscore = false;
    for (at, byte) in rest.bytes().enumerate() {
        match byte {
            b'0'..=b'9' => {
                value = value
                    .saturating_mul(10)
                    .saturating_add(i64::from(byte - b'0'));
                previous_underscore = false;
            }
            b'_' if at > 0 && !previous_underscore => previous_underscore = true,
            _ => break,
        }
    }
    if negative { -value } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case("30", Some(30))]
    #[case(" 30 ", Some(30))]
    #[case("+30", Some(30))]
    #[case("0x1e", Some(30))]
    #[case("0X1E", Some(30))]
    #[case("0b11110", Some(30))]
    #[case("0o36", Some(30))]
    #[case("036", Some(30))]
    #[case("0_36", Some(30))]
    #[case("0d30", Some(30))]
    #[case("1_0", Some(10))]
    #[case("0", Some(0))]
    #[case("08", None)]
    #[case("1__0", None)]
    #[case("_10", None)]
    #[case("10_", None)]
    #[case("0x", None)]
    #[case("0x_1e", None)]
    #[case("-5", None)]
    #[case("+-5", None)]
    #[case("1.5", None)]
    #[case("", None)]
    #[case("30s", None)]
    fn numbers_are_read_as_rubys_integer_reads_them(
        #[case] text: &str,
        #[case] expected: Option<u64>,
    ) {
        assert_eq!(ruby_integer(text), expected);
    }
    use proptest::prelude::*;
    use rstest::rstest;

    fn flags(line: &str) -> Flags {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        Flags::parse(&args)
    }

    #[rstest]
    #[case("-t 60")]
    #[case("-t60")]
    #[case("--timeout 60")]
    #[case("--timeout=60")]
    #[case("--time=60")]
    #[case("--ti 60")]
    #[case("-vt60")]
    #[case("-v -t 60")]
    #[case("--verbose -t 60")]
    #[case("--verb --timeout 60")]
    #[case("--verbose -t 60")]
    #[case("-e production -t 60 -C config/sidekiq.yml")]
    fn every_spelling_of_the_timeout(#[case] line: &str) {
        assert_eq!(flags(line).timeout_secs(), Some(60), "{line}");
        assert!(flags(line).problems.is_empty(), "{line}");
    }

    #[test]
    fn reads_concurrency_queues_tag_and_config() {
        let parsed = flags(
            "-c 10 -q critical,3 -q default,1 --queue low -g billing -C config/sidekiq.yml -r ./app.rb",
        );
        assert_eq!(parsed.concurrency, Some(10));
        assert_eq!(
            parsed.queues,
            vec![
                Queue {
                    name: "critical".into(),
                    weight: Some(3)
                },
                Queue {
                    name: "default".into(),
                    weight: Some(1)
                },
                Queue {
                    name: "low".into(),
                    weight: None
                },
            ]
        );
        assert_eq!(parsed.tag.as_deref(), Some("billing"));
        assert_eq!(parsed.config.as_deref(), Some("config/sidekiq.yml"));
        assert_eq!(parsed.require.as_deref(), Some("./app.rb"));
        assert!(parsed.problems.is_empty());
    }

    #[rstest::rstest]
    #[case("critical,", "critical", None)]
    #[case("a,abc", "a", None)]
    #[case("a,-1", "a", None)]
    #[case("a,0", "a", None)]
    #[case("a,2,3", "a", Some(2))]
    #[case("a, 4x", "a", Some(4))]
    #[case("a,1_0", "a", Some(10))]
    #[case(" spaced ", " spaced ", None)]
    fn queues_are_read_as_sidekiq_reads_them(
        #[case] arg: &str,
        #[case] name: &str,
        #[case] weight: Option<u32>,
    ) {
        let parsed = Flags::parse(&["-q".to_owned(), arg.to_owned()]);
        assert_eq!(
            parsed.queues,
            vec![Queue {
                name: name.into(),
                weight
            }]
        );
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    }

    #[test]
    fn a_switch_given_a_value_is_a_problem() {
        let parsed = flags("--verbose=yes -t 60");
        assert_eq!(parsed.timeout_secs(), Some(60));
        assert_eq!(parsed.problems.len(), 1);
        assert_eq!(parsed.problems[0].flag, "--verbose");
        assert_eq!(parsed.problems[0].reason, "takes no value");
    }

    #[test]
    fn the_last_timeout_wins_like_in_sidekiq() {
        assert_eq!(flags("-t 10 --timeout 30").timeout_secs(), Some(30));
    }

    #[test]
    fn values_left_to_run_time_are_not_problems() {
        let run_time = |line: &str| {
            let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
            Flags::parse_with(&args, &|value| value.contains('$'))
        };
        let parsed = run_time("-t $SIDEKIQ_TIMEOUT -c $(THREADS) -q ${QUEUE},2");
        assert_eq!(
            parsed.timeout,
            Some(Timeout::AtRunTime("$SIDEKIQ_TIMEOUT".into()))
        );
        assert_eq!(parsed.concurrency, None);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        // The last timeout wins, a run-time one included.
        assert_eq!(run_time("-t $T -t 30").timeout, Some(Timeout::Seconds(30)));
        assert_eq!(
            run_time("-t 30 -t $T").timeout,
            Some(Timeout::AtRunTime("$T".into()))
        );
        // Where nothing expands it, `$T` is what Sidekiq gets, and refuses.
        assert_eq!(flags("-t $T").problems.len(), 1);
        // A last -t without its value leaves Sidekiq with no timeout: it would not start.
        assert_eq!(flags("-t 30 -t").timeout, Some(Timeout::Invalid));
    }

    #[rstest]
    #[case(
        "-t soon",
        "-t",
        Some("soon"),
        "expected a whole number of seconds",
        false
    )]
    #[case(
        "-t 9223372036854775807",
        "-t",
        Some("9223372036854775807"),
        "too long: at most 100 years (3153600000 seconds)",
        false
    )]
    #[case("-t _", "-t", Some("_"), "expected a whole number of seconds", false)]
    #[case(
        "-t 1__0",
        "-t",
        Some("1__0"),
        "expected a whole number of seconds",
        false
    )]
    #[case(
        "-t ++5",
        "-t",
        Some("++5"),
        "expected a whole number of seconds",
        false
    )]
    #[case(
        "-t 99999999999999999999999",
        "-t",
        Some("99999999999999999999999"),
        "too long: at most 100 years (3153600000 seconds)",
        false
    )]
    #[case("-t", "-t", None, "is missing its value", false)]
    #[case(
        "-c 0",
        "-c",
        Some("0"),
        "expected a positive whole number of threads",
        false
    )]
    #[case(
        "--t 5",
        "--t",
        None,
        "ambiguous: it abbreviates --tag, --timeout",
        false
    )]
    #[case(
        "--frobnicate",
        "--frobnicate",
        None,
        "not an option Sidekiq knows",
        false
    )]
    #[case("-x", "-x", None, "not an option Sidekiq knows", false)]
    #[case("-t 08", "-t", Some("08"), "expected a whole number of seconds", false)]
    #[case(
        "-t 0",
        "-t",
        Some("0"),
        "expected a positive whole number of seconds: Sidekiq refuses 0",
        false
    )]
    #[case(
        "-t 07777777777777777777777",
        "-t",
        Some("07777777777777777777777"),
        "too long: at most 100 years (3153600000 seconds)",
        false
    )]
    // Features Sidekiq 6.0 removed: it prints an error for each and starts without it.
    #[case(
        "-d -t 60",
        "-d",
        None,
        "removed in Sidekiq 6.0, which no longer daemonizes",
        true
    )]
    #[case(
        "--daemon -t 60",
        "--daemon",
        None,
        "removed in Sidekiq 6.0, which no longer daemonizes",
        true
    )]
    #[case(
        "-L log/sidekiq.log -t 60",
        "-L",
        Some("log/sidekiq.log"),
        "removed in Sidekiq 6.0, which logs only to stdout",
        true
    )]
    #[case(
        "-t 60 -P tmp/pids/sidekiq.pid",
        "-P",
        Some("tmp/pids/sidekiq.pid"),
        "removed in Sidekiq 6.0, which writes no pid file: a preStop that reads it finds no process to signal",
        true
    )]
    fn problems_name_the_flag(
        #[case] line: &str,
        #[case] flag: &str,
        #[case] value: Option<&str>,
        #[case] reason: &str,
        #[case] ignored: bool,
    ) {
        let parsed = flags(line);
        assert_eq!(
            parsed.problems,
            vec![FlagProblem {
                flag: flag.into(),
                value: value.map(str::to_owned),
                reason: reason.into(),
                ignored,
            }]
        );
    }

    #[test]
    fn a_flag_sidekiq_ignores_leaves_the_others_read() {
        assert_eq!(flags("-d -t 60").timeout_secs(), Some(60));
        assert_eq!(
            flags("-t 60 -P tmp/pids/sidekiq.pid").timeout_secs(),
            Some(60)
        );
    }

    proptest! {
        #[test]
        fn never_panics(args in proptest::collection::vec("-{0,2}[a-zA-Z=,0-9]{0,8}", 0..8)) {
            let _ = Flags::parse(&args);
        }

        /// Any timeout Sidekiq starts with; 0, which it refuses, is a problem, not a timeout.
        #[test]
        fn any_timeout_is_read_back(secs in 0u64..100_000, long in any::<bool>()) {
            let args = if long {
                vec![format!("--timeout={secs}")]
            } else {
                vec!["-t".to_owned(), secs.to_string()]
            };
            let expected = crate::sidekiq::accepts_timeout(secs).then_some(secs);
            prop_assert_eq!(Flags::parse(&args).timeout_secs(), expected);
        }
    }
}
