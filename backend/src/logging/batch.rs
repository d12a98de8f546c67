//! Log lines written in batches: a request thread appends its formatted
//! line to a shared buffer and moves on; one thread writes the buffer out
//! every [`FLUSH_EVERY`], or as soon as it holds [`FLUSH_AT`] bytes.
//!
//! Why not a line per `write(2)`: with an access line per request, the two
//! request threads took stdout's lock and made a system call for every
//! request. Why not `tracing-appender`'s non-blocking writer: it hands each
//! line over a channel and flushes whenever the channel runs empty, which
//! under load is still a write (and a wake-up) every line or two.
//!
//! Nothing is dropped: past [`HOLD_AT`] bytes (stdout not keeping up), a
//! request thread waits for the writer. [`Flusher`] writes what is left
//! when dropped.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// The longest a line waits in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// The buffer is written out early once it holds this much.
pub const FLUSH_AT: usize = 64 * 1024;
/// Past this much waiting, a request thread waits for the writer.
pub const HOLD_AT: usize = 1024 * 1024;

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: a full buffer, or the end.
    full: Condvar,
    /// Wakes request threads held at [`HOLD_AT`].
    drained: Condvar,
}

struct State {
    lines: Vec<u8>,
    closing: bool,
}

/// The writer tracing's formatter writes each line through.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// The thread that writes the batches; dropping it writes what is left and
/// waits for the thread.
pub struct Flusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A writer batching into `out`, and the thread writing the batches.
pub fn batched<W: Write + Send + 'static>(out: W) -> io::Result<(BatchWriter, Flusher)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            lines: Vec::with_capacity(FLUSH_AT),
            closing: false,
        }),
        full: Condvar::new(),
        drained: Condvar::new(),
    });
    let thread = std::thread::Builder::new()
        .name("planb-log".into())
        .spawn({
            let shared = shared.clone();
            move || write_batches(&shared, out)
        })?;
    Ok((
        BatchWriter {
            shared: shared.clone(),
        },
        Flusher {
            shared,
            thread: Some(thread),
        },
    ))
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves a buffer of whole lines: go on.
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The writer thread: waits for a batch, takes it, writes it outside the lock.
fn write_batches<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::with_capacity(FLUSH_AT);
    loop {
        let closing = {
            let mut state = lock(shared);
            if state.lines.len() < FLUSH_AT && !state.closing {
                state = shared
                    .full
                    .wait_timeout(state, FLUSH_EVERY)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            std::mem::swap(&mut batch, &mut state.lines);
            state.closing
        };
        shared.drained.notify_all();
        if !batch.is_empty() {
            // Nowhere to report a failed write of the log itself: the lines are lost,
            // the service goes on.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
        }
        if closing && lock(shared).lines.is_empty() {
            return;
        }
    }
}

impl Write for &BatchWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut state = lock(&self.shared);
        while state.lines.len() >= HOLD_AT && !state.closing {
            state = self
                .shared
                .drained
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        state.lines.extend_from_slice(line);
        if state.lines.len() >= FLUSH_AT {
            self.shared.full.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Borrowed, not cloned, per line: a clone per line was two atomic
/// operations on a counter every request thread shares.
impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = &'a BatchWriter;

    fn make_writer(&'a self) -> &'a BatchWriter {
        self
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        lock(&self.shared).closing = true;
        self.shared.full.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` into a shared vector, counting the writes.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Recorded {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut r = self.0.lock().unwrap();
            r.0.extend_from_slice(buf);
            r.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_from_many_threads_come_out_whole_in_order_per_thread_and_in_few_writes() {
        let out = Recorded::default();
        let (writer, flusher) = batched(out.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        (&w).write_all(format!("{t} {i:05} {}\n", "x".repeat(100)).as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        drop(flusher);
        let (bytes, writes) = out.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_000);
        for t in 0..4 {
            let mine: Vec<&str> = lines
                .iter()
                .filter(|l| l.starts_with(&format!("{t} ")))
                .copied()
                .collect();
            let expected: Vec<String> = (0..5000)
                .map(|i| format!("{t} {i:05} {}", "x".repeat(100)))
                .collect();
            assert_eq!(mine, expected, "thread {t}'s lines");
        }
        // Batches, not a write per line.
        assert!(writes <= 2_000, "{writes} writes for 20,000 lines");
    }

    #[test]
    fn a_quiet_line_is_out_within_the_interval_and_the_rest_on_drop() {
        let out = Recorded::default();
        let (writer, flusher) = batched(out.clone()).unwrap();
        (&writer).write_all(b"one\n").unwrap();
        let deadline = std::time::Instant::now() + FLUSH_EVERY * 20;
        while out.0.lock().unwrap().0.is_empty() {
            assert!(std::time::Instant::now() < deadline, "not written");
            std::thread::sleep(FLUSH_EVERY / 10);
        }
        (&writer).write_all(b"two\n").unwrap();
        drop(flusher);
        assert_eq!(out.0.lock().unwrap().0, b"one\ntwo\n");
    }

    #[test]
    fn a_stuck_output_holds_writers_instead_of_growing_or_dropping() {
        /// Blocks every write until released.
        struct Gate(Arc<(Mutex<bool>, Condvar)>, Recorded);
        impl Write for Gate {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let (open, cv) = &*self.0;
                let _g = cv.wait_while(open.lock().unwrap(), |o| !*o).unwrap();
                self.1.write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let out = Recorded::default();
        let (writer, flusher) = batched(Gate(gate.clone(), out.clone())).unwrap();
        let line = vec![b'y'; 1023]
            .into_iter()
            .chain([b'\n'])
            .collect::<Vec<u8>>();
        let producer = std::thread::spawn({
            let w = writer.clone();
            let line = line.clone();
            move || {
                for _ in 0..4 * HOLD_AT / line.len() {
                    (&w).write_all(&line).unwrap();
                }
            }
        });
        // The writer thread holds one batch; the buffer fills to HOLD_AT and the producer waits.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while lock(&writer.shared).lines.len() < HOLD_AT {
            assert!(
                std::time::Instant::now() < deadline,
                "the buffer never filled"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(!producer.is_finished(), "the producer went on past HOLD_AT");
        assert!(lock(&writer.shared).lines.len() < HOLD_AT + line.len());
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        producer.join().unwrap();
        drop(flusher);
        assert_eq!(
            out.0.lock().unwrap().0.len(),
            4 * HOLD_AT / line.len() * line.len()
        );
    }
}
