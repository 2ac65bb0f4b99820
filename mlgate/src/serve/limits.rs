//! The process's own limits: as many open files as the system lets it have, since every
//! connection is one.

/// Raises the soft limit on open files to the hard limit; a failure leaves the limit as it was
/// (logged: the server still runs, it just refuses connections sooner).
pub fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the one struct passed, which outlives the
    // calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            super::log(&format!("warning: cannot read the open-files limit: {}", std::io::Error::last_os_error()));
            return;
        }
        if limit.rlim_cur >= limit.rlim_max {
            return;
        }
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            super::log(&format!(
                "warning: cannot raise the open-files limit from {} to {}: {}",
                limit.rlim_cur,
                limit.rlim_max,
                std::io::Error::last_os_error()
            ));
        }
    }
}

/// How much lower a scoring thread's priority is than the I/O threads' (a nice increment).
pub const SCORING_NICE: i32 = 5;

thread_local! {
    static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Lowers the priority of the calling thread (a thread of the blocking pool, which scores) by
/// [`SCORING_NICE`], once: when scoring takes every core, the scheduler still gives the I/O
/// threads — accepting connections, answering the probes — their turn first. Lowering one's own
/// priority needs no privilege; a failure (a seccomp profile refusing it) changes nothing else.
pub fn lower_scoring_priority() {
    if LOWERED.with(|l| l.replace(true)) {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: gettid has no preconditions; getpriority/setpriority read and change the
    // scheduling priority of the calling thread only (Linux's PRIO_PROCESS with a thread id).
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        if now == -1 && *libc::__errno_location() != 0 {
            return;
        }
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid, (now + SCORING_NICE).min(19));
    }
}

/// The calling thread's nice value (Linux).
#[cfg(all(test, target_os = "linux"))]
fn thread_nice() -> i32 {
    // SAFETY: as in lower_scoring_priority.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_limit() {
        super::raise_open_files_limit();
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        assert_eq!(limit.rlim_cur, limit.rlim_max);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_scoring_thread_yields_to_the_others_once() {
        let (before, lowered, again) = std::thread::spawn(|| {
            let before = super::thread_nice();
            super::lower_scoring_priority();
            let lowered = super::thread_nice();
            super::lower_scoring_priority();
            (before, lowered, super::thread_nice())
        })
        .join()
        .unwrap();
        let other = super::thread_nice();
        assert_eq!(lowered, (before + super::SCORING_NICE).min(19));
        assert_eq!(again, lowered, "lowered once per thread, not at every request");
        assert_eq!(other, before, "only the scoring thread is lowered");
    }
}
