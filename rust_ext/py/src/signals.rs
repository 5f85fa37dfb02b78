//! Long calls that still answer signals: Python runs signal handlers only on the interpreter's main thread,
//! between bytecodes, so a call that holds that thread in Rust for minutes would delay Ctrl-C (and the CLI's
//! SIGTERM handler) until it returns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Runs `work` on a second thread while this one, the interpreter's, waits without holding it and runs the
/// Python signal handlers every 100 ms: a handler's exception (Ctrl-C, the toolkit's SIGTERM handler) sets
/// `interrupt`, which `work` polls, and is returned once `work` has stopped. A long call thus stops within a
/// moment of a signal instead of at its end.
pub fn until_signal<T: Send>(py: Python<'_>, interrupt: &AtomicBool, work: impl FnOnce() -> T + Send) -> PyResult<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let _ = tx.send(work());
        });
        let mut signal = None;
        let mut rx = rx;
        loop {
            let (back, received) = py.detach(move || {
                let received = rx.recv_timeout(Duration::from_millis(100));
                (rx, received)
            });
            rx = back;
            match received {
                Ok(result) => return signal.map_or(Ok(result), Err),
                Err(RecvTimeoutError::Timeout) => {
                    if signal.is_none() {
                        if let Err(e) = py.check_signals() {
                            interrupt.store(true, Ordering::Relaxed);
                            signal = Some(e);
                        }
                    }
                }
                // `work` panicked: the scope re-raises the panic when it ends.
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(signal.unwrap_or_else(|| PyValueError::new_err("the signing thread stopped")))
                }
            }
        }
    })
}
