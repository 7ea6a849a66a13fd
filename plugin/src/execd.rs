//! The long-running loop Telegraf's `inputs.execd` drives.
//!
//! Triggers come from three places and meet in one channel: stdin lines
//! (`signal = "STDIN"`), signals (SIGUSR1/SIGUSR2/SIGHUP), and the timer
//! (`--interval`). The main thread collects; triggers that arrive meanwhile
//! collapse into one follow-up batch. Stdin EOF is honoured in order (pending
//! triggers first); SIGTERM/SIGINT end the loop right after the batch in flight.

use std::io::{BufRead, Read};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Collect,
    /// Stdin closed: Telegraf is stopping us.
    Eof,
    /// SIGTERM / SIGINT.
    Terminate,
}

pub enum Flow {
    Continue,
    /// stdout is gone (EPIPE): nobody is listening, exit 0.
    Stop,
}

fn spawn_stdin(tx: Sender<Trigger>, eof_stops: bool) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            // Bounded line: a stream without newlines must not grow memory forever.
            match (&mut lock).take(64 * 1024).read_until(b'\n', &mut buf) {
                Ok(0) => {
                    if eof_stops {
                        let _ = tx.send(Trigger::Eof);
                    }
                    return;
                }
                Ok(_) => {
                    if tx.send(Trigger::Collect).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    if eof_stops {
                        let _ = tx.send(Trigger::Eof);
                    }
                    return;
                }
            }
        }
    });
}

fn spawn_signals(tx: Sender<Trigger>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGUSR1, SIGUSR2, SIGHUP, SIGTERM, SIGINT])?;
    std::thread::spawn(move || {
        for sig in signals.forever() {
            let t = if sig == SIGTERM || sig == SIGINT {
                Trigger::Terminate
            } else {
                Trigger::Collect
            };
            if tx.send(t).is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// With `--interval`, stdin EOF stops us only when stdin is a pipe (Telegraf
/// closing it); `</dev/null` under systemd or nohup must not end the loop.
fn stdin_is_pipe() -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata("/proc/self/fd/0")
        .map(|m| m.file_type().is_fifo() || m.file_type().is_socket())
        .unwrap_or(true)
}

pub fn run(interval: Option<Duration>, mut batch: impl FnMut() -> Flow) -> std::io::Result<()> {
    let (tx, rx): (Sender<Trigger>, Receiver<Trigger>) = mpsc::channel();
    spawn_signals(tx.clone())?;
    spawn_stdin(tx, interval.is_none() || stdin_is_pipe());
    let mut next = interval.map(|_| Instant::now());
    loop {
        let t = match (interval, next) {
            (Some(iv), Some(at)) => {
                let wait = at.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(t) => t,
                    Err(RecvTimeoutError::Timeout) => {
                        // Fixed cadence; a slow batch skips ticks instead of bunching them.
                        let mut n = at + iv;
                        while n <= Instant::now() {
                            n += iv;
                        }
                        next = Some(n);
                        Trigger::Collect
                    }
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                }
            }
            _ => match rx.recv() {
                Ok(t) => t,
                Err(_) => return Ok(()),
            },
        };
        match t {
            Trigger::Terminate | Trigger::Eof => return Ok(()),
            Trigger::Collect => {}
        }
        // Collect, then fold whatever arrived meanwhile into at most one more batch.
        loop {
            if let Flow::Stop = batch() {
                return Ok(());
            }
            let mut again = false;
            let mut eof = false;
            while let Ok(t) = rx.try_recv() {
                match t {
                    Trigger::Collect => again = !eof || again,
                    Trigger::Eof => eof = true,
                    Trigger::Terminate => return Ok(()),
                }
            }
            if !again {
                if eof {
                    return Ok(());
                }
                break;
            }
            if eof {
                if let Flow::Stop = batch() {
                    return Ok(());
                }
                return Ok(());
            }
        }
    }
}
