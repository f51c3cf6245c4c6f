//! Sidekiq 7+'s execution metrics in Redis, read without `KEYS` or `SCAN`: every key name is
//! computed from the clock.
//!
//! Each minute, a hash counts runs per class (`<class>|p`), failures (`|f`) and milliseconds of
//! successful runs (`|ms`); each class also gets a histogram of run times for that minute: 26
//! big-endian unsigned 16-bit counters, one per bucket of [`BUCKET_BOUNDS_MS`] plus "slower".
//! Only runs that return are timed: a job that raised — including one Sidekiq interrupted at
//! its shutdown timeout — counts as a failure and adds nothing to the histogram.
//! Both live 8 hours. Key names differ between 7.x and 8.x (facts and sources in
//! `docs/research.md`, fixtures under `tests/data/redis/`):
//!
//! | | 7.x | 8.x |
//! |---|---|---|
//! | minute hash | `j|%Y%m%d|%-H:%-M` | `j|%y%m%d|%-H:%M` |
//! | histogram | `<class>-%d-%H:%-M` | `h|<class>-%-d-%-H:%-M` |

use std::collections::BTreeMap;

use crate::timestamp;

/// Upper bounds of the histogram buckets, in milliseconds: Sidekiq counts a run in the first
/// bucket whose bound it is *below*, so bucket `i` holds `[bound[i-1], bound[i])`; a 26th bucket
/// counts the runs of at least the last bound.
pub const BUCKET_BOUNDS_MS: [u64; 25] = [
    20, 30, 45, 65, 100, 150, 225, 335, 500, 750, 1100, 1700, 2500, 3800, 5750, 8500, 13000, 20000,
    30000, 45000, 65000, 100000, 150000, 225000, 335000,
];
/// Buckets per histogram.
pub const BUCKETS: usize = 26;
/// How long Sidekiq keeps minute metrics.
pub const RETENTION_MINUTES: i64 = 8 * 60;

/// The key layout of a Sidekiq major version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layout {
    /// Sidekiq 7.x.
    V7,
    /// Sidekiq 8.x.
    V8,
}

/// Both layouts: which one a Redis holds is learned from which keys exist.
pub const LAYOUTS: [Layout; 2] = [Layout::V7, Layout::V8];

/// One minute of metrics, in one layout.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minute {
    /// The layout.
    pub layout: Layout,
    /// Unix seconds of the minute's start.
    pub epoch: i64,
}

impl Minute {
    /// The minute hash's key.
    pub fn hash_key(&self) -> String {
        let c = timestamp::civil(self.epoch);
        match self.layout {
            Layout::V7 => format!(
                "j|{:04}{:02}{:02}|{}:{}",
                c.year, c.month, c.day, c.hour, c.minute
            ),
            Layout::V8 => format!(
                "j|{:02}{:02}{:02}|{}:{:02}",
                c.year % 100,
                c.month,
                c.day,
                c.hour,
                c.minute
            ),
        }
    }

    /// The histogram key of `class` for this minute.
    pub fn histogram_key(&self, class: &str) -> String {
        let c = timestamp::civil(self.epoch);
        match self.layout {
            Layout::V7 => format!("{class}-{:02}-{:02}:{}", c.day, c.hour, c.minute),
            Layout::V8 => format!("h|{class}-{}-{}:{}", c.day, c.hour, c.minute),
        }
    }
}

/// The minutes of the last `minutes` (newest first) before `now`, in both layouts.
pub fn recent_minutes(now: i64, minutes: i64) -> Vec<Minute> {
    let current = now - now.rem_euclid(60);
    (0..minutes.clamp(0, RETENTION_MINUTES))
        .flat_map(|i| {
            LAYOUTS.into_iter().map(move |layout| Minute {
                layout,
                epoch: current - i * 60,
            })
        })
        .collect()
}

/// The classes that ran in a minute hash (fields `<class>|p`, `|f`, `|ms`).
pub fn classes(fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<String> {
    let mut classes: Vec<String> = fields
        .iter()
        .filter_map(|(field, _)| {
            let field = std::str::from_utf8(field).ok()?;
            let (class, counter) = field.rsplit_once('|')?;
            matches!(counter, "p" | "f" | "ms").then(|| class.to_owned())
        })
        .collect();
    classes.sort();
    classes.dedup();
    classes
}

/// The counters of a histogram string. Redis stores only up to the last written counter, so a
/// short string means zeros after it; an odd trailing byte is the high half of a counter.
pub fn parse_histogram(bytes: &[u8]) -> [u64; BUCKETS] {
    let mut counts = [0u64; BUCKETS];
    for (i, count) in counts.iter_mut().enumerate() {
        let hi = bytes.get(2 * i).copied().unwrap_or(0);
        let lo = bytes.get(2 * i + 1).copied().unwrap_or(0);
        *count = u64::from(u16::from_be_bytes([hi, lo]));
    }
    counts
}

/// The slowest runs a histogram records: the range of its highest non-empty bucket. A
/// histogram tells no more: a run in `[225 s, 335 s)` may have taken 226 s or 334 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slowest {
    /// The slowest run took at least this many milliseconds.
    pub from_ms: u64,
    /// … and less than this many; `None` for the last bucket, which has no upper bound.
    pub below_ms: Option<u64>,
}

/// The highest non-empty bucket of `counts`.
pub fn slowest(counts: &[u64; BUCKETS]) -> Option<Slowest> {
    let top = counts.iter().rposition(|&n| n > 0)?;
    Some(Slowest {
        from_ms: top
            .checked_sub(1)
            .map_or(0, |below| BUCKET_BOUNDS_MS[below]),
        below_ms: BUCKET_BOUNDS_MS.get(top).copied(),
    })
}

/// What the metrics say about one class over the window read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassTimes {
    /// Runs (successful or not).
    pub runs: u64,
    /// The slowest runs, from the histograms.
    pub slowest: Option<Slowest>,
}

/// Merges histograms into per-class figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collector {
    classes: BTreeMap<String, ClassTimes>,
}

impl Collector {
    /// Counts the runs of a minute hash.
    pub fn add_minute(&mut self, fields: &[(Vec<u8>, Vec<u8>)]) {
        for (field, value) in fields {
            let (Ok(field), Ok(value)) = (std::str::from_utf8(field), std::str::from_utf8(value))
            else {
                continue;
            };
            if let Some(class) = field.strip_suffix("|p") {
                let runs = value.parse().unwrap_or(0);
                self.entry(class).runs += runs;
            }
        }
    }

    /// Adds a histogram of `class`.
    pub fn add_histogram(&mut self, class: &str, bytes: &[u8]) {
        let slowest = slowest(&parse_histogram(bytes));
        let entry = self.entry(class);
        entry.slowest = entry.slowest.max(slowest);
    }

    fn entry(&mut self, class: &str) -> &mut ClassTimes {
        self.classes.entry(class.to_owned()).or_insert(ClassTimes {
            runs: 0,
            slowest: None,
        })
    }

    /// Per-class figures, by class name.
    pub fn finish(self) -> BTreeMap<String, ClassTimes> {
        self.classes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-26 02:45 UTC and 02:47 UTC, the minutes of the captured fixtures.
    const AT_0245: i64 = 1_795_661_100;
    const AT_0247: i64 = AT_0245 + 120;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn key_names_match_what_sidekiq_wrote() {
        let v7 = Minute {
            layout: Layout::V7,
            epoch: AT_0245,
        };
        assert_eq!(v7.hash_key(), "j|20261126|2:45");
        assert_eq!(v7.histogram_key("SleepJob"), "SleepJob-26-02:45");
        let v8 = Minute {
            layout: Layout::V8,
            epoch: AT_0247,
        };
        assert_eq!(v8.hash_key(), "j|261126|2:47");
        assert_eq!(v8.histogram_key("SleepJob"), "h|SleepJob-26-2:47");
        let early = Minute {
            layout: Layout::V8,
            epoch: AT_0245 - 2 * 3600 - 40 * 60,
        };
        assert_eq!(early.hash_key(), "j|261126|0:05");
    }

    #[test]
    fn recent_minutes_cover_both_layouts_and_stop_at_retention() {
        let minutes = recent_minutes(AT_0245 + 30, 2);
        let keys: Vec<String> = minutes.iter().map(Minute::hash_key).collect();
        assert_eq!(
            keys,
            vec![
                "j|20261126|2:45",
                "j|261126|2:45",
                "j|20261126|2:44",
                "j|261126|2:44"
            ]
        );
        assert_eq!(recent_minutes(AT_0245, 10_000).len(), 2 * 480);
    }

    #[test]
    fn reads_the_captured_histogram() {
        let raw = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
        let counts = parse_histogram(&raw);
        assert_eq!(counts[7], 3);
        assert_eq!(counts.iter().sum::<u64>(), 3);
        let sleeps = Slowest {
            from_ms: 225,
            below_ms: Some(335),
        };
        assert_eq!(slowest(&counts), Some(sleeps));
        let mut collector = Collector::default();
        collector.add_minute(&fields(&[("SleepJob|ms", "905"), ("SleepJob|p", "3")]));
        collector.add_histogram("SleepJob", &raw);
        assert_eq!(
            collector.finish()["SleepJob"],
            ClassTimes {
                runs: 3,
                slowest: Some(sleeps)
            }
        );
    }

    #[test]
    fn slow_runs_fall_in_the_last_bucket() {
        let mut raw = vec![0u8; 52];
        raw[51] = 1;
        assert_eq!(
            slowest(&parse_histogram(&raw)),
            Some(Slowest {
                from_ms: 335_000,
                below_ms: None
            })
        );
        let mut fastest = vec![0u8; 52];
        fastest[1] = 1;
        assert_eq!(
            slowest(&parse_histogram(&fastest)),
            Some(Slowest {
                from_ms: 0,
                below_ms: Some(20)
            })
        );
        assert_eq!(slowest(&parse_histogram(&[])), None);
        assert_eq!(parse_histogram(&[1])[0], 256, "an odd byte is a high half");
    }

    #[test]
    fn classes_of_a_minute() {
        let f = fields(&[
            ("Hard::Job|ms", "1"),
            ("Hard::Job|p", "2"),
            ("Other|f", "1"),
            ("junk", "x"),
        ]);
        assert_eq!(
            classes(&f),
            vec!["Hard::Job".to_owned(), "Other".to_owned()]
        );
    }
}
