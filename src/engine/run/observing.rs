//! The driver's part in observing charges ([`crate::engine::observe`]):
//! when the balance is read, which window each submit and each failure
//! falls in, and journaling and reporting each window as it closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use super::Driver;
use super::tasks::Done;
use crate::engine::observe::{Ledger, READ_WAIT, Window, WindowFailure, WindowSubmit};
use crate::engine::slot::State;
use crate::engine::{
    PollOutcome, Record, RunEvent, StepError, StepExecutor, StopReason, Submission,
};

/// The shortest wait for a balance read, whatever the time scale.
const MIN_READ_WAIT: Duration = Duration::from_secs(1);

/// What submits and polls share with the balance reads.
#[derive(Debug, Clone)]
pub(super) struct WindowHandle {
    /// Held shared by submits on the wire, exclusively by a balance read.
    lock: Arc<RwLock<()>>,
    /// The open window's number, changed only under the exclusive lock.
    open: Arc<AtomicU64>,
}

/// Where a submit's exchange lay among the balance windows.
#[derive(Debug, Clone, Copy)]
pub(super) enum SubmitWindow {
    /// Wholly inside this window: it held it while on the wire.
    Held(u64),
    /// It held none (its answer waits for work on the service, and holding
    /// a window that long would keep every other submit waiting): it was
    /// sent while this window was open, and its charge lies in a window
    /// from this one to the one open when its answer came.
    Since(u64),
}

/// A submit's hold on its window, for as long as it is on the wire.
pub(super) struct Held {
    _guard: OwnedRwLockReadGuard<()>,
    pub(super) seq: u64,
}

impl WindowHandle {
    /// Waits until no balance read is on its way, then holds the window.
    pub(super) async fn enter(self) -> Held {
        let guard = self.lock.read_owned().await;
        // Stable while the guard is held: only a read's exclusive hold moves it.
        let seq = self.open.load(Ordering::SeqCst);
        Held { _guard: guard, seq }
    }

    /// The window open now.
    pub(super) fn current(&self) -> u64 {
        self.open.load(Ordering::SeqCst)
    }
}

pub(super) struct Observer {
    handle: WindowHandle,
    ledger: Ledger,
    /// Earlier processes' windows, reported once at the start.
    earlier: Vec<Window>,
}

impl Observer {
    pub(super) fn new(earlier: &[Window]) -> Observer {
        let ledger = Ledger::after(earlier);
        Observer {
            handle: WindowHandle {
                lock: Arc::new(RwLock::new(())),
                open: Arc::new(AtomicU64::new(ledger.open)),
            },
            ledger,
            earlier: earlier.to_vec(),
        }
    }

    pub(super) fn window(&self) -> WindowHandle {
        self.handle.clone()
    }
}

impl<E: StepExecutor> Driver<'_, E> {
    /// Reports the windows of earlier processes and reads the opening
    /// balance before any submit can leave.
    pub(super) fn observe_start(&mut self) {
        let Some(observer) = self.observer.as_mut() else {
            return;
        };
        for window in std::mem::take(&mut observer.earlier) {
            self.emit(RunEvent::Observed { window });
        }
        self.read_balance();
    }

    /// The window the instance's latest submit lay in.
    pub(super) fn submit_window(&self, idx: usize) -> Option<u64> {
        self.slots[idx].submit_window
    }

    /// A submit came back: if it was (or may have been) charged, it counts
    /// in its window and the balance is read again.
    pub(super) fn observe_submit(
        &mut self,
        idx: usize,
        result: &Result<Submission, StepError>,
        window: Option<SubmitWindow>,
    ) {
        let (Some(observer), Some(window)) = (self.observer.as_mut(), window) else {
            return;
        };
        let (seq, since) = match window {
            SubmitWindow::Held(seq) => (seq, None),
            SubmitWindow::Since(since) => {
                // A read on its way may have looked before the charge landed.
                let last = observer.ledger.open + u64::from(observer.ledger.reading);
                (last.max(since), (last > since).then_some(since))
            }
        };
        let State::Submitting(job) = &self.slots[idx].state else {
            return;
        };
        let paid = match result {
            Ok(_) => true,
            Err(e) => e.charged,
        };
        if paid {
            observer.ledger.submitted(
                seq,
                WindowSubmit {
                    inst: job.id.to_string(),
                    attempt: job.attempt,
                    operation: job.operation.to_owned(),
                    planned: self.graph.step(idx).unit_credits,
                    since,
                },
            );
            self.slots[idx].submit_window = Some(seq);
            self.read_balance();
        }
    }

    /// A poll came back: a task seen pending moves the start of its
    /// refund's range on; one seen failed is noted for its refund; one that
    /// ended either way has the balance read again.
    pub(super) fn observe_poll(
        &mut self,
        idx: usize,
        result: &Result<PollOutcome, StepError>,
        window: u64,
    ) {
        let Some(observer) = self.observer.as_mut() else {
            return;
        };
        let State::Polling(p) = &mut self.slots[idx].state else {
            return;
        };
        match result {
            Ok(PollOutcome::Pending { .. }) => p.refund_since = Some(window),
            Ok(PollOutcome::Failed { .. }) => {
                // A read on its way may have looked before the refund landed.
                let seq = observer.ledger.open + u64::from(observer.ledger.reading);
                let failure = WindowFailure {
                    inst: p.job.id.to_string(),
                    attempt: p.job.attempt,
                    operation: p.job.operation.to_owned(),
                    planned: p.charged,
                    since: p.refund_since,
                };
                observer.ledger.failed(seq, failure);
                self.read_balance();
            }
            Ok(PollOutcome::Done(_)) => self.read_balance(),
            Err(_) => {}
        }
    }

    /// Asks for the balance unless a read is on its way (then once more after it).
    fn read_balance(&mut self) {
        let Some(observer) = self.observer.as_mut() else {
            return;
        };
        if observer.ledger.reading {
            observer.ledger.again = true;
            return;
        }
        observer.ledger.reading = true;
        let handle = observer.handle.clone();
        let executor = Arc::clone(&self.executor);
        let wait = self.config.scale(READ_WAIT).max(MIN_READ_WAIT);
        // Taken now when free, so that the opening read goes before any submit.
        let taken = Arc::clone(&handle.lock).try_write_owned().ok();
        self.tasks.spawn_unowned(async move {
            let guard: OwnedRwLockWriteGuard<()> = match taken {
                Some(g) => g,
                None => Arc::clone(&handle.lock).write_owned().await,
            };
            let balance = tokio::time::timeout(wait, executor.balance())
                .await
                .ok()
                .and_then(Result::ok);
            if balance.is_some() {
                handle.open.fetch_add(1, Ordering::SeqCst);
            }
            drop(guard);
            Done::Balance { balance }
        });
    }

    /// A balance read came back.
    pub(super) fn balance_read(&mut self, balance: Option<u64>) {
        let Some(observer) = self.observer.as_mut() else {
            return;
        };
        let closed = observer.ledger.read(balance);
        let again = std::mem::take(&mut observer.ledger.again);
        if let Some(window) = closed {
            self.journal_window(window);
        }
        // After a failed read, the next trigger reads again, not this one.
        if again && balance.is_some() {
            self.read_balance();
        }
    }

    /// The run ends: a window still open is kept with no closing balance.
    pub(super) fn observe_end(&mut self) {
        let Some(observer) = self.observer.as_mut() else {
            return;
        };
        if let Some(window) = observer.ledger.close_unread() {
            self.journal_window(window);
        }
    }

    fn journal_window(&mut self, window: Window) {
        if let Err(e) = self.memory.record(Record::Observed { window: &window }) {
            self.stop(StopReason::Journal { error: Some(e) });
        }
        self.emit(RunEvent::Observed { window });
    }
}
