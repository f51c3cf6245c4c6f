//! Logs: one line per event on stdout, as text for people or JSON for log pipelines.
//!
//! Under load, lines reach stdout in batches rather than one `write` each: at thousands of
//! admission reviews a second, a system call per line (and the container runtime's read of it)
//! cost the webhook about a sixth of its CPU time. A line that follows the previous write by
//! [`FLUSH_EVERY`] or more is written at once, so a quiet webhook logs exactly as before; a
//! line that comes sooner waits at most [`FLUSH_EVERY`] in memory for the lines that follow it.
//! The guard [`init`] returns writes out whatever is left when the process ends.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

mod json;

use tracing::Level;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The longest a log line waits before it is written out, and the shortest time between two
/// writes.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Handed to the flushing thread at once when the pending lines reach this size, so that a
/// burst does not wait for the interval.
const FLUSH_AT: usize = 64 * 1024;

/// Written out by the logging thread itself when the pending lines reach this size: the
/// flushing thread is behind (a slow log reader), and memory must not grow without bound.
const MAX_PENDING: usize = 4 * FLUSH_AT;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line, event fields at the top level.
    Json,
}

/// Which events are logged: sidekiq-guard's at `level`, its libraries' at `warn` or quieter.
fn filter(level: Level) -> Targets {
    let libraries = if level < Level::WARN {
        level
    } else {
        Level::WARN
    };
    // kube-client logs each failed request at ERROR; the webhook's only requests are its
    // version reads, whose failures it logs itself with what it does next (retry, backoff).
    let kube_client = if level >= Level::DEBUG {
        LevelFilter::from_level(libraries)
    } else {
        LevelFilter::OFF
    };
    Targets::new()
        .with_default(libraries)
        .with_target("kube_client", kube_client)
        .with_target("sidekiq_guard_webhook", level)
        .with_target("sidekiq_guard", level)
}

/// Installs the global subscriber: sidekiq-guard's own events at `level`, its libraries' at
/// `warn` (or `level`, when that is quieter) so that debugging the webhook does not drown in
/// TLS and HTTP internals. Keep the returned guard until the end of `main`: dropping it writes
/// out the lines still waiting.
#[must_use = "dropping the guard at once would lose the last log lines at exit"]
pub fn init(format: LogFormat, level: Level) -> LogGuard {
    let batch = Batch::start();
    let registry = tracing_subscriber::registry().with(filter(level));
    let result = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(batch.clone())
                    .with_ansi(false),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(json::JsonLine)
                    .with_writer(batch.clone()),
            )
            .try_init(),
    };
    // Only fails when a subscriber is already installed (tests); keep that one.
    let _ = result;
    LogGuard(batch)
}

/// Writes out the pending log lines when dropped.
#[derive(Debug)]
pub struct LogGuard(Batch);

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.0.flush();
    }
}

/// Log lines waiting to be written out, shared by every thread that logs and the one that
/// writes them out.
#[derive(Clone)]
struct Batch(Arc<Shared>);

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").finish_non_exhaustive()
    }
}

struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when a line arrives in an empty batch (so that an idle webhook does not wake)
    /// and when a batch is full.
    arrived: Condvar,
    /// Where lines go. Taken while `pending` is still held, so that batches leave in the order
    /// they were taken; the write itself runs with `pending` free for the next lines.
    out: Mutex<Box<dyn std::io::Write + Send>>,
}

struct Pending {
    lines: Vec<u8>,
    /// When lines were last taken to be written; `None` before the first time.
    written: Option<Instant>,
}

impl Pending {
    /// Whether the last write is long enough ago for a new line to go out at once.
    fn quiet(&self) -> bool {
        self.written.is_none_or(|at| at.elapsed() >= FLUSH_EVERY)
    }
}

impl Batch {
    fn new(out: Box<dyn std::io::Write + Send>) -> Self {
        Self(Arc::new(Shared {
            pending: Mutex::new(Pending {
                lines: Vec::with_capacity(FLUSH_AT),
                written: None,
            }),
            arrived: Condvar::new(),
            out: Mutex::new(out),
        }))
    }

    /// A batch for stdout with its flushing thread.
    fn start() -> Self {
        let batch = Self::new(Box::new(std::io::stdout()));
        let flusher = batch.clone();
        // A failure to spawn leaves lines to the size cap and the guard: logs still arrive,
        // only later.
        let _ = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || flusher.flush_forever());
        batch
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        // A panic while appending leaves at worst a partial line; keep logging.
        self.0
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn flush_forever(&self) {
        loop {
            let pending = self.pending();
            let mut pending = self
                .0
                .arrived
                .wait_while(pending, |p| p.lines.is_empty())
                .unwrap_or_else(PoisonError::into_inner);
            // Let the lines of the next moments join this one's write, unless the batch is
            // full already.
            let due = pending
                .written
                .map_or_else(Instant::now, |at| at + FLUSH_EVERY);
            loop {
                let now = Instant::now();
                if pending.lines.len() >= FLUSH_AT || now >= due {
                    break;
                }
                pending = self
                    .0
                    .arrived
                    .wait_timeout(pending, due - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            self.write_out(pending);
        }
    }

    fn flush(&self) {
        self.write_out(self.pending());
    }

    /// Takes the pending lines and writes them, with `pending` released during the write. A
    /// closed stdout drops them: logging never stops the webhook.
    fn write_out(&self, mut pending: MutexGuard<'_, Pending>) {
        if pending.lines.is_empty() {
            return;
        }
        let lines = std::mem::replace(&mut pending.lines, Vec::with_capacity(FLUSH_AT));
        pending.written = Some(Instant::now());
        let mut out = self.0.out.lock().unwrap_or_else(PoisonError::into_inner);
        drop(pending);
        let _ = out.write_all(&lines);
        let _ = out.flush();
    }
}

impl<'a> MakeWriter<'a> for Batch {
    type Writer = BatchWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        BatchWriter(self)
    }
}

/// Appends one formatted event to the batch.
#[derive(Debug)]
pub struct BatchWriter<'a>(&'a Batch);

impl std::io::Write for BatchWriter<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let batch = self.0;
        let mut pending = batch.pending();
        let before = pending.lines.len();
        pending.lines.extend_from_slice(line);
        let after = pending.lines.len();
        if after >= MAX_PENDING || (before == 0 && pending.quiet()) {
            // A quiet moment's line goes out at once; a flusher that cannot keep up makes the
            // loggers wait rather than memory grow.
            batch.write_out(pending);
        } else if before == 0 || (before < FLUSH_AT && after >= FLUSH_AT) {
            drop(pending);
            batch.0.arrived.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn libraries_log_warnings_and_kube_client_only_when_debugging() {
        let info = filter(Level::INFO);
        assert!(info.would_enable("sidekiq_guard_webhook::serve", &Level::INFO));
        assert!(!info.would_enable("hyper::proto", &Level::INFO));
        assert!(info.would_enable("rustls::server", &Level::WARN));
        // The webhook says each failed version read itself, with its retry.
        assert!(!info.would_enable("kube_client::client::builder", &Level::ERROR));
        let debug = filter(Level::DEBUG);
        assert!(debug.would_enable("sidekiq_guard::review", &Level::DEBUG));
        assert!(debug.would_enable("kube_client::client::builder", &Level::ERROR));
        assert!(!debug.would_enable("hyper::proto", &Level::DEBUG));
    }

    /// A sink the test can read back.
    #[derive(Clone, Default)]
    pub(super) struct Sink(pub(super) Arc<Mutex<Vec<u8>>>);

    impl<'a> MakeWriter<'a> for Sink {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_close_behind_a_write_wait_and_leave_together() {
        let sink = Sink::default();
        let batch = Batch::new(Box::new(sink.clone()));
        let mut writer = batch.make_writer();
        writer.write_all(b"{\"message\":\"one\"}\n").unwrap();
        assert_eq!(
            sink.0.lock().unwrap().as_slice(),
            b"{\"message\":\"one\"}\n",
            "the first line in a while goes out at once"
        );
        writer.write_all(b"{\"message\":\"two\"}\n").unwrap();
        writer.write_all(b"{\"message\":\"three\"}\n").unwrap();
        assert_eq!(sink.0.lock().unwrap().len(), 18, "the next ones wait");
        drop(LogGuard(batch));
        assert_eq!(
            sink.0.lock().unwrap().as_slice(),
            b"{\"message\":\"one\"}\n{\"message\":\"two\"}\n{\"message\":\"three\"}\n"
        );
    }

    #[test]
    fn a_full_batch_goes_to_the_flusher_and_a_runaway_one_is_written_in_place() {
        let sink = Sink::default();
        let batch = Batch::new(Box::new(sink.clone()));
        let mut writer = batch.make_writer();
        writer.write_all(b"x\n").unwrap();
        writer.write_all(&vec![b'x'; FLUSH_AT]).unwrap();
        assert_eq!(
            sink.0.lock().unwrap().len(),
            2,
            "left to the flushing thread"
        );
        writer
            .write_all(&vec![b'y'; MAX_PENDING - FLUSH_AT])
            .unwrap();
        assert_eq!(sink.0.lock().unwrap().len(), 2 + MAX_PENDING);
        assert!(batch.pending().lines.is_empty());

        // The flushing thread, woken by the full batch, writes it.
        let flusher = batch.clone();
        std::thread::spawn(move || flusher.flush_forever());
        writer.write_all(&vec![b'z'; FLUSH_AT]).unwrap();
        let deadline = Instant::now() + FLUSH_EVERY * 50;
        while sink.0.lock().unwrap().len() < 2 + MAX_PENDING + FLUSH_AT {
            assert!(Instant::now() < deadline, "never flushed");
            std::thread::sleep(FLUSH_EVERY / 10);
        }
    }

    #[test]
    fn the_flushing_thread_writes_within_the_interval() {
        let sink = Sink::default();
        let batch = Batch::new(Box::new(sink.clone()));
        let flusher = batch.clone();
        std::thread::spawn(move || flusher.flush_forever());
        batch.make_writer().write_all(b"first\n").unwrap();
        batch.make_writer().write_all(b"late\n").unwrap();
        let deadline = Instant::now() + FLUSH_EVERY * 50;
        while sink.0.lock().unwrap().len() == 6 {
            assert!(Instant::now() < deadline, "never flushed");
            std::thread::sleep(FLUSH_EVERY / 10);
        }
        assert_eq!(sink.0.lock().unwrap().as_slice(), b"first\nlate\n");
    }
}
