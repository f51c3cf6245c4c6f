//! Reading a job's payload without its arguments.
//!
//! A work hash entry holds the whole job, arguments included, as a JSON string inside JSON. The
//! probe reads every entry on each drain poll and each `/status`, and needs a handful of
//! fields: building the arguments as a `serde_json::Value` (and the payload's unescaped text
//! before that) added two copies of them to what the probe held while reading the job, which
//! the 32 MiB limit its container gets does not leave room for with large arguments. Here the
//! payload is decoded from its escaped text as it is read, the arguments are skipped without
//! being kept, and only an ActiveJob wrapper's first argument is looked into, for its
//! `job_class`.

use std::fmt;
use std::io;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The payload fields a job report uses, as they were written; `args` is not among them.
pub(crate) const KEPT: [&str; 6] = [
    "class",
    "wrapped",
    "queue",
    "jid",
    "created_at",
    "enqueued_at",
];

/// A payload's [`KEPT`] fields, and its first argument's `job_class` when that is a string.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Payload {
    /// The kept fields.
    pub(crate) fields: Map<String, Value>,
    /// `args[0].job_class`.
    pub(crate) active_job_class: Option<String>,
}

/// Reads `raw`, the payload as it appears in the work entry: a JSON string holding the job's
/// JSON (Sidekiq 6 to 8), or the job's object itself (older releases).
pub(crate) fn read(raw: &str) -> Result<Payload, serde_json::Error> {
    match raw.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        // serde_json reads a reader byte by byte: buffered, each call decodes a block — no
        // larger than the payload, which is read for every running job on every poll and is
        // usually a few hundred bytes.
        Some(escaped) => serde_json::from_reader(io::BufReader::with_capacity(
            escaped.len().clamp(64, 16 * 1024),
            Unescape::new(escaped.as_bytes()),
        )),
        None => serde_json::from_str(raw),
    }
}

impl Payload {
    /// Whether `args[0].job_class` may name the job: not when `wrapped` already does, nor when
    /// `class`, read first (Sidekiq writes it before `args`), is no ActiveJob wrapper. Skipped
    /// unseen, a first argument of megabytes is never copied (serde_json reads a string whole
    /// before it can tell what it is).
    fn may_need_job_class(&self) -> bool {
        if self.fields.contains_key("wrapped") {
            return false;
        }
        match self.fields.get("class") {
            Some(Value::String(class)) => class.contains("JobWrapper"),
            _ => true,
        }
    }
}

impl<'de> de::Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(PayloadVisitor)
    }
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Payload;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a job payload object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload, A::Error> {
        let mut payload = Payload::default();
        while let Some(key) = map.next_key::<String>()? {
            if KEPT.contains(&key.as_str()) {
                let value = map.next_value::<Value>()?;
                payload.fields.insert(key, value);
            } else if key == "args" && payload.may_need_job_class() {
                payload.active_job_class = map.next_value_seed(FirstJobClass)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(payload)
    }
}

/// `args`: the `job_class` of its first element, everything else skipped.
struct FirstJobClass;

impl<'de> DeserializeSeed<'de> for FirstJobClass {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(JobClassIn { depth: Depth::Args })
    }
}

/// Where [`JobClassIn`] is: in `args`, or in its first element.
#[derive(Clone, Copy)]
enum Depth {
    Args,
    First,
}

/// Finds `job_class` in `args[0]`; any other shape is no class.
struct JobClassIn {
    depth: Depth,
}

impl<'de> Visitor<'de> for JobClassIn {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let class = match self.depth {
            Depth::Args => seq
                .next_element_seed(Nested(JobClassIn {
                    depth: Depth::First,
                }))?
                .flatten(),
            Depth::First => None,
        };
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(class)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut class = None;
        while let Some(key) = map.next_key::<String>()? {
            match self.depth {
                Depth::First if key == "job_class" && class.is_none() => {
                    class = match map.next_value::<Value>()? {
                        Value::String(name) => Some(name),
                        _ => None,
                    };
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(class)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A [`JobClassIn`] as the seed of a sequence element.
struct Nested(JobClassIn);

impl<'de> DeserializeSeed<'de> for Nested {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self.0)
    }
}

/// The text of a JSON string's content (between its quotes, escapes and all) as the bytes it
/// stands for, decoded while read. The outer document was parsed already, so the escapes are
/// valid; a lone surrogate is not UTF-8 and is refused.
struct Unescape<'a> {
    rest: &'a [u8],
    /// Decoded bytes of the last escape not yet handed out.
    pending: [u8; 4],
    pending_len: usize,
    pending_at: usize,
}

impl<'a> Unescape<'a> {
    fn new(escaped: &'a [u8]) -> Self {
        Self {
            rest: escaped,
            pending: [0; 4],
            pending_len: 0,
            pending_at: 0,
        }
    }

    /// Decodes the escape at the start of `rest` (after its `\`) into `pending`.
    fn escape(&mut self) -> io::Result<()> {
        let invalid = || io::Error::new(io::ErrorKind::InvalidData, "invalid escape in a string");
        let (&kind, after) = self.rest.split_first().ok_or_else(invalid)?;
        self.rest = after;
        let byte = match kind {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let mut code = u32::from(self.hex4().ok_or_else(invalid)?);
                if (0xD800..0xDC00).contains(&code) {
                    let low = self
                        .rest
                        .strip_prefix(b"\\u")
                        .and_then(|after| {
                            self.rest = after;
                            self.hex4()
                        })
                        .filter(|low| (0xDC00..0xE000).contains(low))
                        .ok_or_else(invalid)?;
                    code = 0x10000 + ((code - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                }
                let c = char::from_u32(code).ok_or_else(invalid)?;
                self.pending_len = c.encode_utf8(&mut self.pending).len();
                self.pending_at = 0;
                return Ok(());
            }
            _ => return Err(invalid()),
        };
        self.pending[0] = byte;
        self.pending_len = 1;
        self.pending_at = 0;
        Ok(())
    }

    fn hex4(&mut self) -> Option<u16> {
        let digits = self.rest.get(..4)?;
        let value = u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?;
        self.rest = &self.rest[4..];
        Some(value)
    }
}

impl io::Read for Unescape<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut written = 0;
        while written < buf.len() {
            if self.pending_at < self.pending_len {
                buf[written] = self.pending[self.pending_at];
                self.pending_at += 1;
                written += 1;
                continue;
            }
            // Plain bytes up to the next escape, copied at once; looked for only as far as
            // `buf` holds, or a long run without one would be scanned again on every call.
            let room = buf.len() - written;
            let window = &self.rest[..room.min(self.rest.len())];
            let n = window
                .iter()
                .position(|&b| b == b'\\')
                .unwrap_or(window.len());
            if n > 0 {
                buf[written..written + n].copy_from_slice(&self.rest[..n]);
                self.rest = &self.rest[n..];
                written += n;
                continue;
            }
            let at_escape = self.rest;
            let Some(after) = self.rest.strip_prefix(b"\\") else {
                break;
            };
            self.rest = after;
            if let Err(error) = self.escape() {
                // `Read` reports an error only with nothing read: the bytes before it first,
                // the error on the next call.
                if written > 0 {
                    self.rest = at_escape;
                    break;
                }
                return Err(error);
            }
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `job` as Sidekiq stores it in a work entry: JSON inside a JSON string.
    fn stored(job: &Value) -> String {
        serde_json::to_string(&Value::String(job.to_string())).unwrap()
    }

    #[test]
    fn keeps_what_a_report_uses_and_skips_the_arguments() {
        let job = json!({"retry": true, "queue": "default", "class": "HardJob",
                         "args": ["x\"\\\n\u{e9}\u{1F600}", {"big": [1, 2, 3]}], "jid": "abc",
                         "created_at": 1795661270.5, "enqueued_at": 1795661271.25});
        for raw in [stored(&job), job.to_string()] {
            let payload = read(&raw).unwrap();
            assert_eq!(
                Value::Object(payload.fields),
                json!({"queue": "default", "class": "HardJob", "jid": "abc",
                       "created_at": 1795661270.5, "enqueued_at": 1795661271.25})
            );
            assert_eq!(payload.active_job_class, None);
        }
    }

    #[test]
    fn finds_an_active_job_wrappers_class() {
        // Key order differs between builds (serde_json's `preserve_order`): the wrapper says
        // nothing of what it wraps here, so its first argument is read wherever `args` is.
        const WRAPPER: &str = "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper";
        let job = json!({"class": WRAPPER,
                         "args": [{"job_class": "ReportJob", "arguments": [{"a": "b"}]}]});
        let payload = read(&stored(&job)).unwrap();
        assert_eq!(payload.active_job_class.as_deref(), Some("ReportJob"));
        assert_eq!(payload.fields["class"], WRAPPER);
        // Other shapes of args have no class.
        for args in [
            json!(5),
            json!([[1]]),
            json!([{"job_class": 3}]),
            json!({"job_class": "X"}),
            json!(null),
        ] {
            let payload = read(&stored(&json!({"class": WRAPPER, "args": args}))).unwrap();
            assert_eq!(payload.active_job_class, None, "{args}");
        }
    }

    /// In Sidekiq's own key order `class` (and `wrapped`) come before `args`: a job that is no
    /// ActiveJob wrapper, or says what it wraps, has its arguments skipped unseen.
    #[test]
    fn arguments_are_looked_into_only_for_an_unnamed_active_job() {
        let raw = |text: &str| serde_json::to_string(&Value::String(text.to_owned())).unwrap();
        let native = raw(r#"{"class":"HardJob","args":[{"job_class":"Other"}],"jid":"1"}"#);
        assert_eq!(read(&native).unwrap().active_job_class, None);
        let named = raw(
            r#"{"class":"ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper","wrapped":"ReportJob","args":[{"job_class":"ReportJob"}]}"#,
        );
        assert_eq!(read(&named).unwrap().active_job_class, None);
        let unnamed = raw(
            r#"{"class":"ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper","args":[{"job_class":"ReportJob"}]}"#,
        );
        assert_eq!(
            read(&unnamed).unwrap().active_job_class.as_deref(),
            Some("ReportJob")
        );
    }

    #[test]
    fn decodes_every_escape_as_json_does() {
        let text = "q\"b\\s/\u{8}\u{c}\n\r\t\u{1}\u{e9}\u{20ac}\u{1F600}";
        let job = json!({"class": text});
        assert_eq!(read(&stored(&job)).unwrap().fields["class"], text);
        // Escapes serde_json does not write itself: `\/` and `\u` for plain characters.
        let raw = r#""{\"class\":\"a\\/b\\u0041\\ud83d\\ude00\"}""#;
        assert_eq!(read(raw).unwrap().fields["class"], "a/bA\u{1F600}");
    }

    #[test]
    fn a_long_argument_is_skipped_in_one_pass() {
        use std::io::Read as _;
        let long = "y".repeat(4 << 20);
        let job = json!({"class": "Big", "jid": "j", "args": [long, "\"q\""]});
        let started = std::time::Instant::now();
        let payload = read(&stored(&job)).unwrap();
        assert_eq!(payload.fields["class"], "Big");
        assert_eq!(payload.fields["jid"], "j");
        // Read in small pieces, as an unbuffered serde_json reader would: a reader that looked
        // for the next escape past the piece it fills rescanned the 4 MiB run on every call
        // (days); it takes milliseconds, and well under this in a debug build on a slow machine.
        // Run aside and waited for with a deadline: slow, the test fails rather than hangs.
        let stored = stored(&job);
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = Unescape::new(&stored.as_bytes()[1..stored.len() - 1]);
            let (mut buf, mut total) = ([0; 7], 0);
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                total += n;
            }
            let _ = done.send(total);
        });
        let left = std::time::Duration::from_secs(20).saturating_sub(started.elapsed());
        let total = finished
            .recv_timeout(left)
            .expect("4 MiB read in small pieces within 20 s");
        assert_eq!(total, job.to_string().len());
    }

    #[test]
    fn reads_alike_in_any_buffer_size() {
        use std::io::Read as _;
        let escaped = r#"a\"b\u00e9\ud83d\ude00c\n"#;
        for size in 1..8 {
            let mut reader = Unescape::new(escaped.as_bytes());
            let mut out = Vec::new();
            let mut buf = vec![0; size];
            loop {
                let n = reader.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "a\"b\u{e9}\u{1F600}c\n",
                "{size}"
            );
        }
        let mut reader = Unescape::new(br"abc\q");
        let mut buf = [0; 16];
        assert_eq!(reader.read(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
        assert!(reader.read(&mut buf).is_err());
    }

    #[test]
    fn refuses_what_is_not_a_payload() {
        for raw in [
            r#""{\"class\":"#,
            r#""[1]""#,
            "5",
            r#""{\"class\":\"\\ud800\"}""#,
            r#""{\"a\":\"\\q\"}""#,
        ] {
            assert!(read(raw).is_err(), "{raw}");
        }
    }
}
