//! Rate gates: a governor quota read on tokio's clock, plus a pause that a
//! 429 can impose on every later request.
//!
//! Governor's own clocks read the system time; reading tokio's instead keeps
//! the engine testable under paused time and makes the quotas follow the
//! same (scaled) clock as everything else.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

/// Governor's view of tokio's clock: time elapsed since the gate was made.
#[derive(Debug, Clone)]
pub(crate) struct TokioClock {
    epoch: Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// Lets requests through at most once per `period`, with no bursts, so a
/// quota equal to the server's limit never trips it.
pub(crate) struct Gate {
    limiter: Option<Limiter>,
    clock: TokioClock,
    paused_until: Mutex<Option<Instant>>,
}

impl Gate {
    /// `period` between requests; `None` for no limit.
    pub fn new(period: Option<Duration>) -> Gate {
        let clock = TokioClock {
            epoch: Instant::now(),
        };
        let limiter = period
            .filter(|p| !p.is_zero())
            .and_then(Quota::with_period)
            .map(|quota| {
                RateLimiter::direct_with_clock(quota.allow_burst(NonZeroU32::MIN), clock.clone())
            });
        Gate {
            limiter,
            clock,
            paused_until: Mutex::new(None),
        }
    }

    /// Waits until a request may go.
    pub async fn acquire(&self) {
        loop {
            let paused = self.paused_until.lock().map(|p| *p).unwrap_or(None);
            if let Some(until) = paused
                && until > Instant::now()
            {
                tokio::time::sleep_until(until).await;
                continue;
            }
            let Some(limiter) = &self.limiter else { return };
            match limiter.check() {
                Ok(()) => return,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    tokio::time::sleep(wait.max(Duration::from_micros(1))).await;
                }
            }
        }
    }

    /// Holds every request back for `delay` (a 429 answered).
    pub fn pause(&self, delay: Duration) {
        let until = Instant::now() + delay;
        if let Ok(mut p) = self.paused_until.lock() {
            *p = Some(p.map_or(until, |old| old.max(until)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_by_the_period_without_bursts() {
        let gate = Gate::new(Some(Duration::from_secs(3)));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..4 {
            gate.acquire().await;
            times.push(start.elapsed().as_secs());
        }
        assert_eq!(times, vec![0, 3, 6, 9]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_everything_back() {
        let gate = Gate::new(None);
        gate.pause(Duration::from_secs(10));
        let start = Instant::now();
        gate.acquire().await;
        assert_eq!(start.elapsed().as_secs(), 10);
    }
}
