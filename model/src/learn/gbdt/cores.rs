//! The cores a fit's threads use: how many are busy, a helper thread for a large piece of work
//! when one is idle, and the work split the same way whether or not one helps.
//!
//! A build's fits count themselves in ([`enter`]); a fit's large leaves, records and scores are
//! shared out to a second thread only when a core is idle ([`claim`]), so that two fits side by
//! side (a build with `[split] refit = "full"`, the bags of an ensemble) do not crowd the cores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

static BUSY: AtomicUsize = AtomicUsize::new(0);

fn available() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A core in use for as long as it lives.
pub(super) struct Busy(());

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts a boosting thread in, whatever the others do.
pub(super) fn enter() -> Busy {
    BUSY.fetch_add(1, Ordering::AcqRel);
    Busy(())
}

/// A core for a helper thread, if one is idle.
pub(super) fn claim() -> Option<Busy> {
    let cores = available();
    BUSY.fetch_update(Ordering::AcqRel, Ordering::Acquire, |busy| (busy < cores).then_some(busy + 1)).ok()?;
    Some(Busy(()))
}

/// Rows from which a piece of work is worth a second thread, when a core is idle (a thread
/// costs tens of microseconds; fifty thousand rows, about a millisecond of sums).
const HELPED_ROWS: usize = 50_000;

/// A core for a helper thread, if the work (`rows`) is worth one and a core is idle.
pub(super) fn helper(rows: usize) -> Option<Busy> {
    if rows >= HELPED_ROWS {
        claim()
    } else {
        None
    }
}

/// `theirs` on a second thread when the work is worth one (`rows` at least [`HELPED_ROWS`])
/// and a core is idle (see [`claim`]), beside `mine` on this one; both on this one otherwise.
/// Callers split their work the same way whether or not a thread helps, so what they compute
/// does not depend on it.
pub(super) fn join<A: Send, B>(rows: usize, theirs: impl FnOnce() -> A + Send, mine: impl FnOnce() -> B) -> (A, B) {
    let helper = helper(rows);
    join_with(helper.is_some(), theirs, mine)
}

/// [`join`], with a second thread when `helped` (unless the system refuses one: the work is
/// then done on this thread).
pub(super) fn join_with<A: Send, B>(
    helped: bool,
    theirs: impl FnOnce() -> A + Send,
    mine: impl FnOnce() -> B,
) -> (A, B) {
    if !helped {
        let b = mine();
        return (theirs(), b);
    }
    // The closure stays here until the thread takes it: a thread that never starts leaves it.
    let slot = std::sync::Mutex::new(Some(theirs));
    let take = || slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    std::thread::scope(|scope| {
        let started = std::thread::Builder::new().spawn_scoped(scope, || take().map(|f| f()));
        let b = mine();
        let a = started.ok().and_then(|h| h.join().expect("a helper thread panicked"));
        let a = a.unwrap_or_else(|| take().expect("the closure of a thread that never started")());
        (a, b)
    })
}
