//! The threads connections run on: each a single-threaded runtime of its own, given accepted
//! connections in turn. A connection stays on the thread it was given: its socket is watched by
//! that thread's own poller, and a request wakes that thread alone — no task moves between
//! threads, and no thread wakes another to share out work. On a machine whose cores the
//! clients share, a work-stealing pool spent its cores waking its own threads: 5.8 CPU-seconds
//! in 4 s for fewer requests than one thread answered with 3.9 (BENCHMARKS.md, issue 25).
//!
//! Scoring a large body still goes to the blocking pool ([`super::intake::scoring`]): each
//! runtime has its own, so that a slow request does not hold the connections of its thread.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};

/// The connection threads, and what stops them.
pub struct Workers {
    handles: Vec<tokio::runtime::Handle>,
    next: AtomicUsize,
    /// Dropped to stop the threads: each ends its runtime, and the connections still on it.
    stop: Vec<tokio::sync::oneshot::Sender<()>>,
    /// Told by each thread as it ends.
    ended: std::sync::mpsc::Receiver<()>,
}

/// How long [`Workers::stop`] waits for the threads: a connection stuck in its work (a scoring
/// that does not return) does not keep the process from exiting.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

impl Workers {
    /// `n` threads (at least one), each running a runtime with I/O and timers.
    pub fn start(n: usize) -> Result<Workers> {
        let (ended_tx, ended) = std::sync::mpsc::channel();
        let mut workers = Workers { handles: Vec::new(), next: AtomicUsize::new(0), stop: Vec::new(), ended };
        for i in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start a connection thread's runtime")?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            workers.handles.push(runtime.handle().clone());
            workers.stop.push(stop);
            let ended = ended_tx.clone();
            std::thread::Builder::new()
                .name(format!("mlgate-conn-{i}"))
                .spawn(move || {
                    // Runs the connections spawned on it until told to stop.
                    let _ = runtime.block_on(stopped);
                    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
                    let _ = ended.send(());
                })
                .context("cannot start a connection thread")?;
        }
        Ok(workers)
    }

    /// Runs `connection` on the next thread in turn. The future is first polled there: a socket
    /// it registers (`TcpStream::from_std`) is watched by that thread's poller.
    pub fn run<F>(&self, connection: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let at = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        drop(self.handles[at].spawn(connection));
    }

    /// Stops the threads, ending what still runs on them, and waits for them at most
    /// [`STOP_GRACE`]; returns how many did not end within it.
    pub fn stop(mut self) -> usize {
        let threads = self.stop.len();
        self.stop.clear();
        let deadline = std::time::Instant::now() + STOP_GRACE;
        let mut ended = 0;
        while ended < threads {
            match self.ended.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
                Ok(()) => ended += 1,
                Err(_) => break,
            }
        }
        threads - ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_dealt_to_the_threads_in_turn_and_run_there() {
        let workers = Workers::start(3).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for i in 0..6 {
            let tx = tx.clone();
            workers.run(async move {
                // A timer and the thread's name: the future runs on a worker's runtime.
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                tx.send((i, std::thread::current().name().unwrap_or("").to_string())).unwrap();
            });
        }
        let mut seen: Vec<(usize, String)> = (0..6).map(|_| rx.recv().unwrap()).collect();
        seen.sort();
        let names: Vec<&str> = seen.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(
            names,
            ["mlgate-conn-0", "mlgate-conn-1", "mlgate-conn-2", "mlgate-conn-0", "mlgate-conn-1", "mlgate-conn-2"]
        );
        assert_eq!(workers.stop(), 0);
    }

    #[test]
    fn stopping_ends_what_still_runs() {
        let workers = Workers::start(2).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // A connection that would never end: stopping drops it (and with it the sender).
        workers.run(async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        assert_eq!(workers.stop(), 0);
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(5)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    }

    #[test]
    fn stopping_does_not_wait_for_a_thread_stuck_in_its_work() {
        let workers = Workers::start(2).unwrap();
        let (stuck, unstick) = std::sync::mpsc::channel::<()>();
        // Work that blocks its thread (no await): the thread cannot end while it runs.
        workers.run(async move {
            let _ = unstick.recv_timeout(std::time::Duration::from_secs(30));
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        let started = std::time::Instant::now();
        assert_eq!(workers.stop(), 1);
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
        drop(stuck);
    }
}
