//! How many connections the process can hold: the file-descriptor limit. A cap on connections
//! above it would not stop "Too many open files" from locking every client out, so the soft
//! limit is raised to the hard one at start and the cap kept below it, with room for RocksDB's
//! files, the upstream's and the tenants' sockets.

/// Descriptors kept for everything but client connections.
const RESERVED: u64 = 1_024;

/// Raises the soft open-files limit to the hard one (Linux allows that unprivileged) and
/// returns the connections that fit under it, at most `wanted`.
pub(super) fn connection_cap(wanted: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return wanted;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        limit.rlim_cur
    };
    let room = soft.saturating_sub(RESERVED).max(1);
    let cap = wanted.min(usize::try_from(room).unwrap_or(usize::MAX));
    if cap < wanted {
        tracing::warn!(
            max_connections = wanted,
            open_files_limit = soft,
            cap,
            "http.max_connections is above what the open-files limit allows: capped"
        );
    }
    cap
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cap_stays_under_the_open_files_limit() {
        let cap = super::connection_cap(usize::MAX);
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert!(
            (cap as u64) < limit.rlim_cur,
            "{cap} under {}",
            limit.rlim_cur
        );
        assert_eq!(super::connection_cap(5), 5);
    }
}
