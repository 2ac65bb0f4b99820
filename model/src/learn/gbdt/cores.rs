//! The cores a fit's threads use: how many are busy, a helper thread for a large piece of work
//! when one is idle, and the work split the same way whether or not one helps.
//!
//! A build's fits count themselves in ([`enter`]); a fit's large leaves, records and scores are
//! shared out to a second thread only when a core is idle ([`claim`]), so that two fits side by
//! side (a build with `[split] refit = "full"`, the bags of an ensemble) do not crowd the cores.
//! The two halves run on a pool of one thread a core that lives as long as the process
//! (rayon's), not on a thread spawned for each.

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

/// Rows from which a piece of work is worth a second thread, when a core is idle (fifty
/// thousand rows are about a millisecond of sums; 16,000 measured no faster on the 1 M-row
/// build, the pool's threads or threads spawned a piece).
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
pub(super) fn join<A: Send, B: Send>(
    rows: usize,
    theirs: impl FnOnce() -> A + Send,
    mine: impl FnOnce() -> B + Send,
) -> (A, B) {
    let helper = helper(rows);
    join_with(helper.is_some(), theirs, mine)
}

/// [`join`], with a second thread when `helped` (unless the system refuses one: the work is
/// then done on this thread). The pool's threads run `mine` and `theirs` side by side while
/// this thread waits. Whole fits stay on their own threads: a pool thread that waits for its
/// other half may take up any job sent to the pool, and a whole fit taken up that way would
/// stall the fit beneath it for its whole length (with `refit = "full"`, or bags).
pub(super) fn join_with<A: Send, B: Send>(
    helped: bool,
    theirs: impl FnOnce() -> A + Send,
    mine: impl FnOnce() -> B + Send,
) -> (A, B) {
    match pool().filter(|_| helped) {
        Some(pool) => {
            let (b, a) = pool.install(|| rayon::join(mine, theirs));
            (a, b)
        }
        None => {
            let b = mine();
            (theirs(), b)
        }
    }
}

/// The pool of threads a fit's work runs on, one a core; none if the system refused threads.
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new().num_threads(available()).thread_name(|i| format!("fit-{i}")).build().ok()
    })
    .as_ref()
}
