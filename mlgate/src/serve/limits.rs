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
}
