//! POSIX extended regular expressions as `pgrep -f` and `pkill -f` read their pattern
//! (`regcomp` with `REG_EXTENDED`: `.` also matches a newline, `^` and `$` only the ends of
//! the text), in the subset preStop hooks use: literal characters, `.`, bracket expressions
//! with ranges, `*` `+` `?`, `^` at the start, `$` at the end and `\` escapes. Enough to tell
//! whether a hook's pattern matches the hook's own command line. A pattern beyond the subset
//! (groups, alternation, intervals, character classes like `[:digit:]`) is not judged.

/// Whether `pattern` matches somewhere in `text` (everywhere in lower case when
/// `ignore_case`, as `pgrep -i`); `None` when the pattern is outside the subset this reads,
/// or too costly to decide.
pub fn matches(pattern: &str, text: &str, ignore_case: bool) -> Option<bool> {
    let fold = |s: &str| {
        if ignore_case {
            s.to_lowercase()
        } else {
            s.to_owned()
        }
    };
    let pattern = Pattern::parse(&fold(pattern))?;
    let text: Vec<char> = fold(text).chars().collect();
    let mut budget = STEPS;
    let starts = if pattern.at_start {
        0..=0
    } else {
        0..=text.len()
    };
    for start in starts {
        if pattern.match_at(0, &text, start, &mut budget)? {
            return Some(true);
        }
    }
    Some(false)
}

/// Backtracking steps one decision may take: a hook's pattern and command line are short,
/// and a pattern that needs more is not judged rather than judged slowly.
const STEPS: usize = 200_000;

#[derive(Debug)]
struct Pattern {
    at_start: bool,
    pieces: Vec<Piece>,
    at_end: bool,
}

#[derive(Debug)]
struct Piece {
    atom: Atom,
    min: usize,
    /// `None`: no upper bound.
    max: Option<usize>,
}

#[derive(Debug)]
enum Atom {
    Char(char),
    Any,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

impl Atom {
    fn accepts(&self, c: char) -> bool {
        match self {
            Atom::Char(expected) => *expected == c,
            Atom::Any => true,
            Atom::Class { negated, items } => {
                items.iter().any(|(low, high)| (*low..=*high).contains(&c)) != *negated
            }
        }
    }
}

impl Pattern {
    fn parse(pattern: &str) -> Option<Pattern> {
        let mut chars = pattern.chars().peekable();
        let at_start = chars.next_if_eq(&'^').is_some();
        let mut pieces: Vec<Piece> = Vec::new();
        let mut at_end = false;
        while let Some(c) = chars.next() {
            let atom = match c {
                '$' if chars.peek().is_none() => {
                    at_end = true;
                    break;
                }
                '*' | '+' | '?' => {
                    let last = pieces
                        .last_mut()
                        .filter(|p| p.min == 1 && p.max == Some(1))?;
                    (last.min, last.max) = match c {
                        '*' => (0, None),
                        '+' => (1, None),
                        _ => (0, Some(1)),
                    };
                    continue;
                }
                '^' | '$' | '(' | ')' | '|' | '{' => return None,
                '\\' => Atom::Char(chars.next()?),
                '.' => Atom::Any,
                '[' => Self::class(&mut chars)?,
                other => Atom::Char(other),
            };
            pieces.push(Piece {
                atom,
                min: 1,
                max: Some(1),
            });
        }
        Some(Pattern {
            at_start,
            pieces,
            at_end,
        })
    }

    /// A bracket expression after its `[`: `]` first is a member, `-` between two members a
    /// range, `\` a member like any other (POSIX brackets have no escapes).
    fn class(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<Atom> {
        let negated = chars.next_if_eq(&'^').is_some();
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let c = chars.next()?;
            match c {
                ']' if !first => break,
                '[' if matches!(chars.peek(), Some(':' | '.' | '=')) => return None,
                low => {
                    let range = chars.peek() == Some(&'-') && {
                        let mut ahead = chars.clone();
                        ahead.next();
                        ahead.peek().is_some_and(|&next| next != ']')
                    };
                    if range {
                        chars.next();
                        let high = chars.next()?;
                        if high < low {
                            return None;
                        }
                        items.push((low, high));
                    } else {
                        items.push((low, low));
                    }
                }
            }
            first = false;
        }
        Some(Atom::Class { negated, items })
    }

    /// Whether the pieces from `piece` on match `text` from `at`, greedily and backtracking.
    fn match_at(&self, piece: usize, text: &[char], at: usize, budget: &mut usize) -> Option<bool> {
        *budget = budget.checked_sub(1)?;
        let Some(current) = self.pieces.get(piece) else {
            return Some(!self.at_end || at == text.len());
        };
        let mut count = 0;
        let limit = current.max.unwrap_or(usize::MAX);
        while count < limit
            && text
                .get(at + count)
                .is_some_and(|&c| current.atom.accepts(c))
        {
            count += 1;
        }
        while count >= current.min {
            if self.match_at(piece + 1, text, at + count, budget)? {
                return Some(true);
            }
            if count == 0 {
                break;
            }
            count -= 1;
        }
        Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn what_hooks_write() {
        let own = "/bin/sh -c pkill -TSTP -f sidekiq; while pgrep -f 'sidekiq.*busy' >/dev/null; do sleep 5; done";
        assert_eq!(matches("sidekiq", own, false), Some(true));
        assert_eq!(matches("sidekiq.*busy", own, false), Some(true));
        assert_eq!(
            matches("[s]idekiq", own, false),
            Some(true),
            "sidekiq; while…"
        );
        assert_eq!(
            matches("[s]idekiq", "sh -c pgrep -f [s]idekiq", false),
            Some(false)
        );
        assert_eq!(matches("^sidekiq ", own, false), Some(false));
        assert_eq!(
            matches("^sidekiq ", "sidekiq 6.4.1 app [1 of 5 busy]", false),
            Some(true)
        );
        assert_eq!(
            matches("busy]$", "sidekiq 6.4.1 app [1 of 5 busy]", false),
            Some(true)
        );
        assert_eq!(matches("SIDEKIQ", own, true), Some(true));
        assert_eq!(matches("SIDEKIQ", own, false), Some(false));
        assert_eq!(matches("sidekiq (quiet|busy)", own, false), None);
        assert_eq!(matches("[[:digit:]]", own, false), None);
        assert_eq!(matches("a{2}", own, false), None);
        assert_eq!(matches("a**", own, false), None);
    }

    #[test]
    fn a_costly_pattern_is_not_judged() {
        let text = "a".repeat(3000);
        assert_eq!(matches(".*.*.*.*b", &text, false), None);
    }

    fn atom() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec!["a", "b", " ", ".", "\\.", "\\*", "\n"])
                .prop_map(str::to_owned),
            prop::sample::select(vec!["[ab]", "[^a]", "[a-c]", "[]a]", "[^ b]"])
                .prop_map(str::to_owned),
        ]
    }

    fn pattern() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            prop::collection::vec(
                (atom(), prop::sample::select(vec!["", "*", "+", "?"])),
                0..6,
            ),
            any::<bool>(),
        )
            .prop_map(|(start, pieces, end)| {
                let body: String = pieces.into_iter().map(|(a, q)| a + q).collect();
                format!(
                    "{}{body}{}",
                    if start { "^" } else { "" },
                    if end { "$" } else { "" }
                )
            })
    }

    proptest! {
        /// The same answers as the `regex` crate, where `.` also matches a newline, as in
        /// POSIX without `REG_NEWLINE`.
        #[test]
        fn agrees_with_a_full_engine(pattern in pattern(), text in "[ab .*\n]{0,12}") {
            let full = regex::Regex::new(&format!("(?s){pattern}")).unwrap();
            prop_assert_eq!(matches(&pattern, &text, false), Some(full.is_match(&text)));
        }
    }
}
