//! Standard output and error that a closed reader (`kubectl sidekiq validate … | head`, or
//! `2>&1 | head`) does not cut short when the command's exit status is its answer.
//!
//! `validate`, `drain` and `check` answer with their exit status (errors found, pods not idle,
//! checks failed) as much as with their text, and CI scripts read it under `set -o pipefail`.
//! When the reader goes away, their output is dropped and the work goes on to its verdict, so
//! that `| head` cannot turn "errors found" into success. The other commands stop at the closed
//! pipe: what they print is all they answer.

use std::io::{self, Write};

/// A writer that, when `keep_going`, treats a closed pipe as the end of the reader's interest:
/// this and every later write are dropped, reported as written.
pub(crate) struct Output<W> {
    inner: W,
    keep_going: bool,
    closed: bool,
}

impl<W: Write> Output<W> {
    pub(crate) fn new(inner: W, keep_going: bool) -> Self {
        Self {
            inner,
            keep_going,
            closed: false,
        }
    }

    fn swallow<T>(&mut self, result: io::Result<T>, done: T) -> io::Result<T> {
        match result {
            Err(err) if self.keep_going && err.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(done)
            }
            other => other,
        }
    }
}

impl<W: Write> Write for Output<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        let result = self.inner.write(buf);
        self.swallow(result, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let result = self.inner.flush();
        self.swallow(result, ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts `room` bytes, then fails like a pipe whose reader has gone.
    struct Pipe {
        room: usize,
        written: Vec<u8>,
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.written.len() + buf.len() > self.room {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn keeps_going_past_a_closed_pipe_when_asked() {
        let mut out = Output::new(
            Pipe {
                room: 6,
                written: Vec::new(),
            },
            true,
        );
        writeln!(out, "first").unwrap();
        writeln!(out, "second").unwrap();
        writeln!(out, "third").unwrap();
        out.flush().unwrap();
        assert_eq!(out.inner.written, b"first\n");
    }

    #[test]
    fn otherwise_reports_the_closed_pipe() {
        let mut out = Output::new(
            Pipe {
                room: 6,
                written: Vec::new(),
            },
            false,
        );
        writeln!(out, "first").unwrap();
        let err = writeln!(out, "second").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn other_errors_are_errors() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::StorageFull.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut out = Output::new(Full, true);
        assert_eq!(
            out.write(b"x").unwrap_err().kind(),
            io::ErrorKind::StorageFull
        );
    }
}
