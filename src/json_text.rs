//! Writing JSON text where serde_json's serializer costs more than the text itself: the
//! admission answer's patch and the webhook's log lines.
//!
//! serde_json writes through an `io::Write` and pays for every fragment: a string is three
//! `write_all`s (quote, contents, quote) around a table lookup per byte. Across the 126 short
//! keys and strings of a typical patch that was over half the cost of writing it (30,000 of
//! 43,000 instructions for the Rails worker pod's, under callgrind; 19,500 written here). Written here into a
//! `fmt::Write` — a `String` or a log line — the output is byte for byte what
//! `serde_json::to_string` writes (tested below against it on arbitrary values).

use std::fmt::{self, Write as _};

use serde_json::Value;

/// Escapes what is written through it for the inside of a JSON string: the quote, the
/// backslash and the control characters (U+0000 to U+001F), which JSON does not allow raw,
/// escaped as serde_json escapes them (`\n`, `\t`… where JSON has a short form, `\u00XX`
/// otherwise). Anything else, U+007F and non-ASCII included, passes through unchanged.
pub struct Escaped<'a, W: fmt::Write + ?Sized>(pub &'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = first_to_escape(rest.as_bytes()) {
            self.0.write_str(&rest[..at])?;
            match rest.as_bytes()[at] {
                b'"' => self.0.write_str("\\\"")?,
                b'\\' => self.0.write_str("\\\\")?,
                b'\n' => self.0.write_str("\\n")?,
                b'\r' => self.0.write_str("\\r")?,
                b'\t' => self.0.write_str("\\t")?,
                0x08 => self.0.write_str("\\b")?,
                0x0c => self.0.write_str("\\f")?,
                control => write!(self.0, "\\u{control:04x}")?,
            }
            // The byte found is ASCII, so the rest starts on a character boundary.
            rest = &rest[at + 1..];
        }
        self.0.write_str(rest)
    }
}

/// The index of the first byte of `bytes` JSON requires escaped. Nearly every string written
/// needs no escape, so this tests eight bytes at a time and looks byte by byte only inside a
/// word that has one: a byte-by-byte scan alone was most of the cost of writing a string.
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    let mut chunks = bytes.chunks_exact(8);
    let mut start = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks of eight bytes"));
        if any_to_escape(word) {
            break;
        }
        start += 8;
    }
    bytes[start..]
        .iter()
        .position(|&byte| needs_escape(byte))
        .map(|at| start + at)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `word` is one JSON requires escaped. A byte below `n` (for `n` up to
/// 0x80) leaves its high bit set in `(word - n × ONES) & !word`, and no byte at or above `n`
/// makes the test true where none is below; a byte equal to `c` is a zero byte in
/// `word ^ (c × ONES)`.
fn any_to_escape(word: u64) -> bool {
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGH_BITS;
    let zero_where = |c: u8| below(word ^ (ONES * u64::from(c)), 1);
    (below(word, 0x20) | zero_where(b'"') | zero_where(b'\\')) != 0
}

fn needs_escape(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

/// Writes `text` as a JSON string, quotes included.
pub fn write_str<W: fmt::Write + ?Sized>(out: &mut W, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(text)?;
    out.write_char('"')
}

/// Writes `value` compactly (no whitespace, object keys in the map's order), as
/// `serde_json::to_string` writes it.
pub fn write_value<W: fmt::Write + ?Sized>(out: &mut W, value: &Value) -> fmt::Result {
    match value {
        Value::Null => out.write_str("null"),
        Value::Bool(true) => out.write_str("true"),
        Value::Bool(false) => out.write_str("false"),
        // A Number's Display is its JSON form (itoa or ryu), as serde_json serialises it.
        Value::Number(number) => write!(out, "{number}"),
        Value::String(text) => write_str(out, text),
        Value::Array(items) => {
            out.write_char('[')?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_char(',')?;
                }
                write_value(out, item)?;
            }
            out.write_char(']')
        }
        Value::Object(members) => {
            out.write_char('{')?;
            for (i, (key, member)) in members.iter().enumerate() {
                if i > 0 {
                    out.write_char(',')?;
                }
                write_str(out, key)?;
                out.write_char(':')?;
                write_value(out, member)?;
            }
            out.write_char('}')
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::arbitrary::json_value;

    fn written(value: &Value) -> String {
        let mut out = String::new();
        write_value(&mut out, value).unwrap();
        out
    }

    #[test]
    fn escapes_as_json_requires() {
        let text = "a\"b\\c\nd\re\tf\u{8}g\u{c}h\u{1}i\u{1f}j\u{7f}ké";
        assert_eq!(
            written(&json!(text)),
            r#""a\"b\\c\nd\re\tf\bg\fh\u0001i\u001fj"#.to_owned() + "\u{7f}ké\""
        );
    }

    #[test]
    fn writes_every_kind_of_value_compactly() {
        // Keys in order: a whole-workspace build keeps insertion order (`preserve_order`).
        let value = json!({"a": {"": "x"}, "b": [1, -2, 2.5, true, false, null], "c": []});
        assert_eq!(
            written(&value),
            r#"{"a":{"":"x"},"b":[1,-2,2.5,true,false,null],"c":[]}"#
        );
    }

    #[test]
    fn finds_the_first_byte_to_escape_in_any_word_position() {
        for len in 0..20 {
            for at in 0..len {
                for special in [b'"', b'\\', 0x00, 0x1f] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    // Bytes just around the ones to escape, and high bytes, are not found.
                    bytes[..at].fill(if at % 2 == 0 { 0x20 } else { 0xff });
                    assert_eq!(first_to_escape(&bytes), Some(at), "{bytes:?}");
                }
            }
            for filler in [b'a', 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff] {
                assert_eq!(
                    first_to_escape(&vec![filler; len]),
                    None,
                    "{filler} × {len}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn any_text_is_escaped_as_serde_json_escapes_it(text in "\\PC*|[\"\\\\\u{0}-\u{1f}\u{7f}é]*") {
            let mut ours = String::new();
            write_str(&mut ours, &text).unwrap();
            prop_assert_eq!(ours, serde_json::to_string(&text).unwrap());
        }

        #[test]
        fn any_value_is_written_as_serde_json_writes_it(value in json_value("[a-z\"\\\\\u{0}-\u{1f}é]{0,6}")) {
            prop_assert_eq!(written(&value), serde_json::to_string(&value).unwrap());
        }
    }
}
