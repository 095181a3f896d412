//! interrupt: SIGINT and SIGTERM during `fleet apply`: Ctrl-C, or a
//! cancelled CI job (GitHub Actions sends SIGINT, then SIGTERM 7.5 s later,
//! then SIGKILL).
//!
//! The first signal asks apply to stop where it stands, as a failed step
//! does: no new write starts, the writes in flight finish (each is bounded
//! by its request timeout), a rollout wait ends, the deploy lock is released
//! at once instead of being left to expire, and what was done and what was
//! not is printed. Before the first write nothing is changed. A second
//! signal exits at once. Either way the exit code is 128 + the signal's
//! number (130, 143), as a shell reports a process the signal killed.
//!
//! `fleet plan` does not listen: it writes nothing, so the default (exit at
//! once) is right for it.

use std::fmt;

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// SIGINT: Ctrl-C, or the first signal of a cancelled CI job.
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl Signal {
    /// 128 + the signal's number.
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        })
    }
}

/// Whether a signal has asked the run to stop. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Interrupt {
    received: watch::Receiver<Option<Signal>>,
}

impl Interrupt {
    /// Catches SIGINT and SIGTERM from now on (on the current Tokio
    /// runtime): the first is recorded for [`Interrupt::received`], the
    /// second exits the process.
    #[cfg(unix)]
    pub(crate) fn listen() -> anyhow::Result<Interrupt> {
        use tokio::signal::unix::{SignalKind, signal};
        let (sender, received) = watch::channel(None);
        let mut interrupts = signal(SignalKind::interrupt())?;
        let mut terminations = signal(SignalKind::terminate())?;
        tokio::spawn(async move {
            loop {
                let signal = tokio::select! {
                    Some(()) = interrupts.recv() => Signal::Interrupt,
                    Some(()) = terminations.recv() => Signal::Terminate,
                    else => return,
                };
                if sender.borrow().is_some() {
                    anstream::eprintln!(
                        "fleet: {signal} after an interrupt: exiting now. A change in flight may or may not have been made, and the deploy lock expires by itself; run apply again: it picks up where this left off"
                    );
                    std::process::exit(signal.exit_code().into());
                }
                anstream::eprintln!(
                    "fleet: {signal} received: stopping once the changes in flight are done (send another signal to exit at once)"
                );
                sender.send_replace(Some(signal));
            }
        });
        Ok(Interrupt { received })
    }

    /// Elsewhere the default stays: a signal ends the process.
    #[cfg(not(unix))]
    pub fn listen() -> anyhow::Result<Interrupt> {
        Ok(Interrupt::never())
    }

    /// Never interrupted: for callers that do not listen for signals.
    #[cfg(any(test, not(unix)))]
    pub(crate) fn never() -> Interrupt {
        // With its sender gone, the value stays `None` for good.
        Interrupt {
            received: watch::channel(None).1,
        }
    }

    /// The signal received so far, if any.
    pub(crate) fn received(&self) -> Option<Signal> {
        *self.received.borrow()
    }

    /// Resolves when a signal is received; never, when none will be.
    pub(crate) async fn wait(&self) -> Signal {
        let mut received = self.received.clone();
        let signal = received
            .wait_for(Option::is_some)
            .await
            .map(|signal| *signal);
        match signal {
            Ok(signal) => signal.expect("waited for a signal"),
            Err(_) => std::future::pending().await,
        }
    }

    /// A stand-in that a test sets by hand.
    #[cfg(test)]
    pub(crate) fn manual() -> (watch::Sender<Option<Signal>>, Interrupt) {
        let (sender, received) = watch::channel(None);
        (sender, Interrupt { received })
    }
}

/// The run stopped for a signal before it changed anything.
#[derive(Debug, thiserror::Error)]
pub(crate) struct Interrupted(pub Signal);

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "interrupted by {} before the first change; nothing was changed",
            self.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_resolves_once_a_signal_is_recorded() {
        let (sender, interrupt) = Interrupt::manual();
        assert_eq!(interrupt.received(), None);
        let waiting = tokio::spawn({
            let interrupt = interrupt.clone();
            async move { interrupt.wait().await }
        });
        sender.send_replace(Some(Signal::Terminate));
        assert_eq!(waiting.await.unwrap(), Signal::Terminate);
        assert_eq!(interrupt.received(), Some(Signal::Terminate));
    }

    #[tokio::test]
    async fn never_never_resolves() {
        let interrupt = Interrupt::never();
        assert_eq!(interrupt.received(), None);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), interrupt.wait());
        assert!(waited.await.is_err());
    }
}
