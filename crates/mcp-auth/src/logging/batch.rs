//! The log thread and the writer that feeds it.
//!
//! A request's thread formats its line (`tracing-subscriber` reuses a buffer per thread) and
//! appends it to one shared buffer under a lock held only for that copy. The log thread takes
//! the whole buffer at once (swapping in an empty one), writes it with one `write_all`,
//! flushes, and pauses for [`PAUSE`], so under load it wakes about a hundred times a second and
//! writes a batch each time; a line logged after a quiet spell is written at once.
//!
//! This replaced `tracing-appender`'s channel, which allocated a `Vec` per line on the
//! request's thread that the log thread then freed: an allocation per line, and a free on
//! another thread, which glibc's allocator pays for in lock traffic (`BENCHMARKS.md`, "The log
//! writer"). Here nothing is allocated per line once the buffers have grown to a batch.
//!
//! Nothing waits on the output: when a batch is full (it holds what the thread has not yet
//! taken), further lines are dropped and counted, and the log thread writes how many were
//! dropped after the batch it takes next.

use std::{
    io::{self, Write},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    thread::JoinHandle,
    time::Duration,
};

use tracing_subscriber::fmt::MakeWriter;

/// How long the log thread waits after writing a batch before it takes the next.
pub(crate) const PAUSE: Duration = Duration::from_millis(10);

/// What one batch may hold before lines are dropped (whichever limit comes first). 8,192
/// lines in a 10 ms pause is room for 800,000 lines a second; a single line longer than the
/// byte limit is always dropped (and counted).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) lines: usize,
    pub(crate) bytes: usize,
}

impl Limits {
    pub(crate) const DEFAULT: Limits = Limits {
        lines: 8_192,
        bytes: 4 << 20,
    };
}

/// A buffer that held more than this is given back to the allocator after it is written, so
/// one burst does not keep its memory for the life of the process.
const KEEP_CAPACITY: usize = 1 << 20;

/// The writer handed to `tracing-subscriber`: each `write` is one formatted line.
#[derive(Clone)]
pub(crate) struct BatchWriter(Arc<Shared>);

/// Stops the log thread when dropped, after it has written every line taken so far.
pub(crate) struct LogThread {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

pub(crate) struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when a line arrives in an empty buffer, and on shutdown.
    wake: Condvar,
    limits: Limits,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    lines: usize,
    dropped: u64,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while the lock was held cannot leave `Pending` half-updated in a way that
        // matters here: at worst a line is cut short. Logging goes on.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts the log thread writing to `out`.
///
/// # Errors
/// The thread could not be started.
pub(crate) fn start<W>(out: W, limits: Limits) -> io::Result<(BatchWriter, LogThread)>
where
    W: Write + Send + 'static,
{
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending::default()),
        wake: Condvar::new(),
        limits,
    });
    let thread = std::thread::Builder::new()
        .name("mcp-auth-log".into())
        .spawn({
            let shared = shared.clone();
            move || run(&shared, out)
        })?;
    Ok((
        BatchWriter(shared.clone()),
        LogThread {
            shared,
            thread: Some(thread),
        },
    ))
}

fn run<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        let (dropped, closed) = {
            let mut pending = shared.lock();
            while pending.lines == 0 && pending.dropped == 0 && !pending.closed {
                pending = shared
                    .wake
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            std::mem::swap(&mut pending.bytes, &mut batch);
            pending.lines = 0;
            (std::mem::take(&mut pending.dropped), pending.closed)
        };
        // A write error has nowhere to be reported but the output that failed: the batch is
        // lost and the server goes on.
        let _ = out.write_all(&batch);
        if dropped > 0 {
            let _ = out.write_all(&dropped_notice(dropped));
        }
        let _ = out.flush();
        if batch.capacity() > KEEP_CAPACITY {
            batch = Vec::new();
        } else {
            batch.clear();
        }
        if closed {
            return;
        }
        std::thread::sleep(PAUSE);
    }
}

/// The line that says how many lines were dropped, in the layout of the others (timestamp,
/// level, target; `tracing-subscriber`'s default format, which right-aligns the level in five
/// columns after one space), so that it sorts and filters with them.
fn dropped_notice(dropped: u64) -> Vec<u8> {
    let mut line = super::clock::UtcMicros::now().to_vec();
    let _ = writeln!(
        line,
        "  WARN mcp_auth::logging: {dropped} log lines dropped: the log output did not keep up"
    );
    line
}

impl Write for &Shared {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut pending = self.lock();
        if pending.lines >= self.limits.lines
            || pending.bytes.len() + line.len() > self.limits.bytes
        {
            pending.dropped += 1;
            return Ok(line.len());
        }
        let was_empty = pending.lines == 0 && pending.dropped == 0;
        pending.bytes.extend_from_slice(line);
        pending.lines += 1;
        drop(pending);
        // Only the first line of a batch can find the thread waiting; later ones would make a
        // system call for nothing.
        if was_empty {
            self.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = &'a Shared;

    fn make_writer(&'a self) -> Self::Writer {
        &self.0
    }
}

impl Drop for LogThread {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use crate::logging::clock::{TEXT_LEN, UtcMicros};

    use super::*;

    /// An output that records each `write_all` as one chunk, and can be made to block.
    #[derive(Clone, Default)]
    struct Output {
        chunks: Arc<Mutex<Vec<Vec<u8>>>>,
        gate: Arc<Mutex<Option<mpsc::Receiver<()>>>>,
    }

    impl Output {
        /// The next write waits until the returned sender sends (or is dropped).
        fn hold_next_write(&self) -> mpsc::Sender<()> {
            let (tx, rx) = mpsc::channel();
            *self.gate.lock().unwrap() = Some(rx);
            tx
        }

        fn text(&self) -> String {
            String::from_utf8(self.chunks.lock().unwrap().concat()).unwrap()
        }
    }

    impl Write for Output {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_all(buf)?;
            Ok(buf.len())
        }
        fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
            if let Some(gate) = self.gate.lock().unwrap().take() {
                let _ = gate.recv();
            }
            if !buf.is_empty() {
                self.chunks.lock().unwrap().push(buf.to_vec());
            }
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn line(writer: &BatchWriter, text: &str) {
        writer.make_writer().write_all(text.as_bytes()).unwrap();
    }

    /// Waits (at most 10 s) until `ready` holds.
    fn eventually(mut ready: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !ready() {
            assert!(std::time::Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A log thread whose output is stuck writing a first line, which it has already taken:
    /// what is written next waits in the batch until the returned sender releases the output.
    fn stuck_after_first_line(
        limits: Limits,
    ) -> (Output, mpsc::Sender<()>, BatchWriter, LogThread) {
        let output = Output::default();
        let release = output.hold_next_write();
        let (writer, thread) = start(output.clone(), limits).unwrap();
        line(&writer, "first\n");
        eventually(|| writer.0.lock().lines == 0);
        (output, release, writer, thread)
    }

    #[test]
    fn lines_arrive_in_order_and_stopping_writes_the_rest() {
        let output = Output::default();
        let (writer, thread) = start(output.clone(), Limits::DEFAULT).unwrap();
        let expected: String = (0..1_000).map(|i| format!("line {i}\n")).collect();
        for i in 0..1_000 {
            line(&writer, &format!("line {i}\n"));
        }
        drop(thread);
        assert_eq!(output.text(), expected);
    }

    /// While the output is stuck, lines still return at once (they are only copied), and
    /// those that arrived meanwhile are written together once it moves again.
    #[test]
    fn a_stuck_output_holds_up_no_writer_and_lines_are_written_in_one_batch() {
        let (output, release, writer, thread) = stuck_after_first_line(Limits::DEFAULT);
        let (done_tx, done_rx) = mpsc::channel();
        let writer2 = writer.clone();
        std::thread::spawn(move || {
            for i in 0..100 {
                line(&writer2, &format!("queued {i}\n"));
            }
            done_tx.send(()).unwrap();
        });
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a writer waited on the stuck output");
        assert!(output.chunks.lock().unwrap().is_empty());
        release.send(()).unwrap();
        eventually(|| output.chunks.lock().unwrap().len() == 2);
        let chunks = output.chunks.lock().unwrap().clone();
        assert_eq!(chunks[0], b"first\n");
        let queued: String = (0..100).map(|i| format!("queued {i}\n")).collect();
        assert_eq!(String::from_utf8(chunks[1].clone()).unwrap(), queued);
        drop(thread);
    }

    #[test]
    fn a_full_batch_drops_lines_and_says_how_many() {
        let (output, release, writer, thread) = stuck_after_first_line(Limits {
            lines: 3,
            bytes: 1 << 20,
        });
        for i in 0..10 {
            line(&writer, &format!("queued {i}\n"));
        }
        release.send(()).unwrap();
        drop(thread);
        assert_eq!(
            without_timestamps(&output.text()),
            "first\nqueued 0\nqueued 1\nqueued 2\n\
             <time>  WARN mcp_auth::logging: 7 log lines dropped: the log output did not keep up\n"
        );
    }

    #[test]
    fn the_byte_limit_drops_lines_too() {
        let (output, release, writer, thread) = stuck_after_first_line(Limits {
            lines: 1_000,
            bytes: 20,
        });
        line(&writer, "0123456789\n");
        line(&writer, "0123456789\n");
        release.send(()).unwrap();
        drop(thread);
        assert_eq!(
            without_timestamps(&output.text()),
            "first\n0123456789\n\
             <time>  WARN mcp_auth::logging: 1 log lines dropped: the log output did not keep up\n"
        );
    }

    /// The text with each line's leading timestamp (`2026-12-01T15:04:05.123456Z`, checked
    /// digit by digit) replaced by `<time>`; lines without one are left as they are.
    fn without_timestamps(text: &str) -> String {
        text.split_inclusive('\n')
            .map(|line| {
                let stamp = line.as_bytes().get(..TEXT_LEN);
                let is_stamp = stamp.is_some_and(|s| {
                    s.iter().enumerate().all(|(i, &b)| match i {
                        4 | 7 => b == b'-',
                        10 => b == b'T',
                        13 | 16 => b == b':',
                        19 => b == b'.',
                        26 => b == b'Z',
                        _ => b.is_ascii_digit(),
                    })
                });
                if is_stamp {
                    format!("<time>{}", &line[TEXT_LEN..])
                } else {
                    line.to_owned()
                }
            })
            .collect()
    }

    /// The notice is stamped with the time it is written, like every other line.
    #[test]
    fn the_dropped_notice_has_the_lines_layout() {
        let before = String::from_utf8(UtcMicros::now().to_vec()).unwrap();
        let notice = String::from_utf8(dropped_notice(3)).unwrap();
        let after = String::from_utf8(UtcMicros::now().to_vec()).unwrap();
        let stamp = &notice[..TEXT_LEN];
        assert!(
            before.as_str() <= stamp && stamp <= after.as_str(),
            "{notice}"
        );
        assert_eq!(
            without_timestamps(&notice),
            "<time>  WARN mcp_auth::logging: 3 log lines dropped: the log output did not keep up\n"
        );
    }
}
