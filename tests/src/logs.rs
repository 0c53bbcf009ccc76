//! Captures every log line the process writes (handlers, local services, SDK), for tests that
//! assert what must never be logged. One subscriber serves the whole test binary: tests look for
//! values unique to their own run (task tokens, planted secrets), so sharing is safe.

use std::sync::{Arc, Mutex, OnceLock};

/// Levels captured: what Lambda logs by default (`info`) for every crate (SDK, runtime, local
/// services), and down to `debug` for the handlers' own crate, so a debug line that leaks is
/// caught too. (Trace-level logs of every crate would slow the other tests sharing the process.)
const FILTER: &str = "info,macie_pipeline=debug";

static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

/// Appends each log line to the shared buffer.
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured logs.
pub struct Logs {
    buffer: Arc<Mutex<Vec<u8>>>,
}

/// Starts capturing (once per process) and returns the capture.
pub fn capture() -> Logs {
    let buffer = BUFFER
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(FILTER))
                .with_writer({
                    let buffer = buffer.clone();
                    move || Sink(buffer.clone())
                })
                .with_ansi(false)
                .try_init()
                .expect("no other subscriber is installed in the test binary");
            buffer
        })
        .clone();
    Logs { buffer }
}

impl Logs {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        let bytes = self
            .buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
