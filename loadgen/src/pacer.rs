//! Open-loop pacing: a thread of its own releases each request at its intended send time.
//!
//! tokio's timers have a resolution of one millisecond and fire only when a worker turns the
//! timer driver, so a request paced by `sleep_until` leaves up to a millisecond or more after
//! its intended time, and that lag, the driver's own, is counted in the latency measured from
//! the intended time. A plain thread sleeping with the kernel's high-resolution timers releases
//! every request due as a permit on a semaphore; a worker takes a permit, then the next
//! request. The thread wakes at most once per [`TICK`], which bounds both its CPU and the lag
//! it adds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// The pacer's shortest sleep: at high rates it releases every request due in one wake-up.
pub(crate) const TICK: Duration = Duration::from_micros(200);
/// Its longest, so that a slow run's pacer notices promptly that it is no longer wanted.
const LONGEST_SLEEP: Duration = Duration::from_millis(50);
/// Permits that let every waiting worker through once nothing more is due.
const FLOOD: usize = Semaphore::MAX_PERMITS / 2;

/// Releases request k (0-based) at `started + offset(k)`, `total` requests, none after
/// `deadline`.
pub(crate) struct Pacer {
    permits: Arc<Semaphore>,
    /// The next request's index, taken with a permit.
    next: AtomicU64,
    total: u64,
    /// Set at the deadline or when dropped: no request is due any more.
    over: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pacer {
    pub(crate) fn start(
        started: Instant,
        deadline: Instant,
        total: u64,
        offset: impl Fn(u64) -> Duration + Send + 'static,
    ) -> Pacer {
        let permits = Arc::new(Semaphore::new(0));
        let over = Arc::new(AtomicBool::new(false));
        let (releasing, ending) = (permits.clone(), over.clone());
        let thread = std::thread::Builder::new()
            .name("loadgen-pacer".into())
            .spawn(move || {
                let mut released = 0u64;
                while released < total && !ending.load(Ordering::Acquire) {
                    let now = Instant::now();
                    if now >= deadline {
                        ending.store(true, Ordering::Release);
                        break;
                    }
                    let mut due = 0u64;
                    while released + due < total && started + offset(released + due) <= now {
                        due += 1;
                    }
                    if due > 0 {
                        releasing.add_permits(due as usize);
                        released += due;
                    }
                    if released < total {
                        let next = started + offset(released);
                        let wait = next.saturating_duration_since(now);
                        std::thread::sleep(wait.clamp(TICK, LONGEST_SLEEP));
                    }
                }
                // Workers still waiting find nothing left to send.
                releasing.add_permits(FLOOD);
            })
            .expect("spawning the pacer thread");
        Pacer {
            permits,
            next: AtomicU64::new(0),
            total,
            over,
            thread: Some(thread),
        }
    }

    /// Waits until the next request is due and returns its index; `None` once no more will be.
    pub(crate) async fn turn(&self) -> Option<u64> {
        self.permits.acquire().await.ok()?.forget();
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        (k < self.total && !self.over.load(Ordering::Acquire)).then_some(k)
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.over.store(true, Ordering::Release);
        self.permits.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn releases_every_request_once_and_none_before_its_time() {
        let started = Instant::now();
        let pacer = Pacer::start(started, started + Duration::from_secs(10), 50, |k| {
            Duration::from_micros(100 * k)
        });
        for k in 0..50 {
            assert_eq!(pacer.turn().await, Some(k), "request {k} released");
            assert!(started.elapsed() >= Duration::from_micros(100 * k));
        }
        assert_eq!(pacer.turn().await, None, "nothing past the total");
    }

    #[tokio::test]
    async fn stops_releasing_at_the_deadline() {
        let started = Instant::now();
        let pacer = Pacer::start(started, started, 1_000, |_| Duration::ZERO);
        assert_eq!(
            pacer.turn().await,
            None,
            "a run already past its deadline sends nothing"
        );
    }
}
