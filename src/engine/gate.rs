//! Rate gates: a governor quota read on tokio's clock, plus a pause that a
//! 429 can impose on every later request, and the set of them a run's
//! submits take, one per operation class.
//!
//! Governor's own clocks read the system time; reading tokio's instead keeps
//! the engine testable under paused time and makes the quotas follow the
//! same (scaled) clock as everything else.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

use crate::prices::OpClass;

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
    limiter: Mutex<Option<Limiter>>,
    period: Mutex<Option<Duration>>,
    /// The longest period `slow_down` may reach.
    ceiling: Option<Duration>,
    /// The configured period, which `speed_up` returns to.
    base: Option<Duration>,
    clock: TokioClock,
    paused_until: Mutex<Option<Instant>>,
    /// When the last slot was granted: a new limiter starts with a free slot,
    /// so after a change of period the next one is held back from this.
    last_granted: Mutex<Option<Instant>>,
    /// When the latest request actually left (see `reserve_send`).
    last_sent: Mutex<Option<Instant>>,
    /// When the latest request really left (see `claim_send`).
    last_left: Mutex<Option<Instant>>,
}

fn limiter(period: Option<Duration>, clock: &TokioClock) -> Option<Limiter> {
    period
        .filter(|p| !p.is_zero())
        .and_then(Quota::with_period)
        .map(|quota| {
            RateLimiter::direct_with_clock(quota.allow_burst(NonZeroU32::MIN), clock.clone())
        })
}

impl Gate {
    /// `period` between requests; `None` for no limit.
    pub fn new(period: Option<Duration>) -> Gate {
        let clock = TokioClock {
            epoch: Instant::now(),
        };
        Gate {
            limiter: Mutex::new(limiter(period, &clock)),
            period: Mutex::new(period),
            ceiling: period.map(|p| p * 2),
            base: period,
            clock,
            paused_until: Mutex::new(None),
            last_granted: Mutex::new(None),
            last_sent: Mutex::new(None),
            last_left: Mutex::new(None),
        }
    }

    /// Takes a slot now, or says how long until the next one.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let paused = self.paused_until.lock().map(|p| *p).unwrap_or(None);
        if let Some(until) = paused
            && until > now
        {
            return Err(until - now);
        }
        let Ok(guard) = self.limiter.lock() else {
            return Ok(());
        };
        match guard.as_ref().map(|l| l.check()) {
            None | Some(Ok(())) => {
                if let Ok(mut last) = self.last_granted.lock() {
                    *last = Some(now);
                }
                Ok(())
            }
            Some(Err(not_until)) => Err(not_until
                .wait_time_from(self.clock.now())
                .max(Duration::from_micros(1))),
        }
    }

    /// Widens the period by `factor` (up to twice the configured one): the
    /// server said 429, so this pace is too fast for it.
    pub fn slow_down(&self, factor: f64) {
        let (Ok(mut period), Some(ceiling)) = (self.period.lock(), self.ceiling) else {
            return;
        };
        let Some(current) = *period else { return };
        let wider = current.mul_f64(factor).min(ceiling);
        *period = Some(wider);
        self.replace_limiter(wider);
    }

    /// Narrows a widened period by `factor` back towards the configured one:
    /// requests are going through again.
    pub fn speed_up(&self, factor: f64) {
        let (Ok(mut period), Some(base)) = (self.period.lock(), self.base) else {
            return;
        };
        let Some(current) = *period else { return };
        if current <= base {
            return;
        }
        let narrower = current.div_f64(factor).max(base);
        *period = Some(narrower);
        self.replace_limiter(narrower);
    }

    /// Switches to `period`, keeping the next slot `period` after the last one granted.
    fn replace_limiter(&self, period: Duration) {
        if let Ok(mut l) = self.limiter.lock() {
            *l = limiter(Some(period), &self.clock);
        }
        let last = self.last_granted.lock().map(|l| *l).unwrap_or(None);
        if let (Some(last), Ok(mut paused)) = (last, self.paused_until.lock()) {
            let next = last + period;
            *paused = Some(paused.map_or(next, |p| p.max(next)));
        }
    }

    /// The moment a granted request may actually be sent: at least one
    /// period after the previous one left. A slot granted on time can still
    /// leave late if the runtime was busy, and the next one must not then
    /// arrive too close behind it.
    pub fn reserve_send(&self) -> Instant {
        let now = Instant::now();
        let period = self
            .period
            .lock()
            .map(|p| *p)
            .unwrap_or(None)
            .unwrap_or_default();
        let Ok(mut last) = self.last_sent.lock() else {
            return now;
        };
        let at = last.map_or(now, |l| (l + period).max(now));
        *last = Some(at);
        at
    }

    /// Claims the moment a request really leaves, after its reserved
    /// moment and whatever else held it up (a balance read on the wire, a
    /// busy runtime): it must be a whole period after the previous request
    /// that left, else this says when to try again. Without it, a request
    /// held up past the moment reserved for the next one would leave
    /// together with it, and the service would refuse one of the two. The
    /// whole period, spare included: a hold-up allowed to eat the spare
    /// leaves the next request no room for network jitter.
    pub fn claim_send(&self) -> Result<(), Instant> {
        let now = Instant::now();
        let period = self.period().unwrap_or_default();
        let Ok(mut left) = self.last_left.lock() else {
            return Ok(());
        };
        if let Some(previous) = *left
            && now < previous + period
        {
            return Err(previous + period);
        }
        *left = Some(now);
        drop(left);
        // Later reservations count from this real departure.
        if let Ok(mut last) = self.last_sent.lock() {
            *last = Some(last.map_or(now, |l| l.max(now)));
        }
        Ok(())
    }

    /// Waits until a request may go.
    pub async fn acquire(&self) {
        while let Err(wait) = self.try_acquire() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Holds every request back for `delay` (a 429 answered).
    pub fn pause(&self, delay: Duration) {
        self.hold_until(Instant::now() + delay);
    }

    fn hold_until(&self, until: Instant) {
        if let Ok(mut p) = self.paused_until.lock() {
            *p = Some(p.map_or(until, |old| old.max(until)));
        }
    }

    /// The current spacing, `None` when unpaced.
    pub fn period(&self) -> Option<Duration> {
        self.period.lock().map(|p| *p).unwrap_or(None)
    }

    /// When the latest request through this gate left (or is due to leave).
    pub fn last_sent(&self) -> Option<Instant> {
        self.last_sent.lock().map(|l| *l).unwrap_or(None)
    }

    /// Treats `at` as a send through this gate too: the next slot and the
    /// next send come at least one period after it.
    pub fn follow(&self, at: Instant) {
        let period = self.period().unwrap_or_default();
        self.hold_until(at + period);
        for mark in [&self.last_sent, &self.last_left] {
            if let Ok(mut last) = mark.lock() {
                *last = Some(last.map_or(at, |l| l.max(at)));
            }
        }
    }
}

/// The submit quotas of a run: one gate per operation class, so that a
/// slow class never holds back another, until a 429 shows that the service
/// counts every paid call against one slot. From then on every class takes
/// the generation gate, whose pace is that slot's.
pub(crate) struct SubmitGates {
    gates: [Arc<Gate>; 2],
    shared: bool,
}

/// What a 429 taught the gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lesson {
    /// The class's own pace was too fast: that class was slowed.
    OwnPace,
    /// The service's slot is shared by every paid call: the classes now take one gate.
    SharedSlot,
}

impl SubmitGates {
    /// A gate per class, spaced by `period(class)`.
    pub fn new(period: impl Fn(OpClass) -> Option<Duration>) -> SubmitGates {
        SubmitGates {
            gates: OpClass::ALL.map(|class| Arc::new(Gate::new(period(class)))),
            shared: false,
        }
    }

    /// The gate requests of `class` take.
    pub fn gate(&self, class: OpClass) -> &Arc<Gate> {
        let class = if self.shared {
            OpClass::Generation
        } else {
            class
        };
        &self.gates[class.index()]
    }

    /// A request of `class` was answered 429; its retry waits `delay`.
    /// Nothing documented limits quick calls, so a 429 on one means the
    /// service's slot is shared by every paid call: from then on every
    /// class takes the generation gate, which first waits a full period
    /// after the latest quick call. Otherwise the class's own gate alone is
    /// paused and slowed.
    pub fn throttled(&mut self, class: OpClass, delay: Duration) -> Lesson {
        let lesson = if self.shared || class != OpClass::Quick {
            Lesson::OwnPace
        } else {
            self.shared = true;
            if let Some(last) = self.gates[OpClass::Quick.index()].last_sent() {
                self.gates[OpClass::Generation.index()].follow(last);
            }
            Lesson::SharedSlot
        };
        let gate = self.gate(class);
        gate.pause(delay);
        gate.slow_down(1.02);
        lesson
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
    async fn slowing_down_widens_the_period_up_to_twice() {
        let gate = Gate::new(Some(Duration::from_secs(10)));
        gate.slow_down(1.5);
        gate.slow_down(1.5);
        let start = Instant::now();
        gate.acquire().await;
        gate.acquire().await;
        assert_eq!(start.elapsed().as_secs(), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn speeding_up_returns_to_the_configured_period_and_no_further() {
        let gate = Gate::new(Some(Duration::from_secs(10)));
        gate.slow_down(2.0);
        gate.speed_up(1.5);
        gate.speed_up(1.5);
        let start = Instant::now();
        gate.acquire().await;
        gate.acquire().await;
        gate.acquire().await;
        assert_eq!(start.elapsed().as_secs(), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn changing_the_period_never_grants_an_early_slot() {
        let gate = Gate::new(Some(Duration::from_secs(10)));
        gate.slow_down(1.5);
        let start = Instant::now();
        gate.acquire().await;
        for _ in 0..5 {
            gate.speed_up(1.1);
            gate.acquire().await;
        }
        // Slots at 0, then each at least 10 s after the previous one.
        assert!(
            start.elapsed() >= Duration::from_secs(50),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sends_stay_a_period_apart_even_when_granted_closer() {
        let gate = Gate::new(Some(Duration::from_secs(3)));
        let start = Instant::now();
        let first = gate.reserve_send();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let second = gate.reserve_send();
        assert_eq!(
            (first - start, second - start),
            (Duration::ZERO, Duration::from_secs(3))
        );
    }

    fn two_gates() -> SubmitGates {
        SubmitGates::new(|class| match class {
            OpClass::Generation => Some(Duration::from_secs(3)),
            OpClass::Quick => Some(Duration::from_secs(1)),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_generation_429_pauses_its_own_class_only() {
        let mut gates = two_gates();
        let (generation, quick) = (OpClass::Generation, OpClass::Quick);
        assert!(!Arc::ptr_eq(gates.gate(generation), gates.gate(quick)));
        let lesson = gates.throttled(generation, Duration::from_secs(10));
        assert_eq!(lesson, Lesson::OwnPace);
        assert!(gates.gate(generation).try_acquire().is_err());
        assert_eq!(gates.gate(quick).try_acquire(), Ok(()));
        assert!(!Arc::ptr_eq(gates.gate(generation), gates.gate(quick)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_quick_429_joins_the_gates_a_period_after_the_last_quick_call() {
        let mut gates = two_gates();
        let start = Instant::now();
        gates.gate(OpClass::Generation).acquire().await;
        assert_eq!(gates.gate(OpClass::Generation).reserve_send(), start);
        tokio::time::sleep(Duration::from_secs(1)).await;
        gates.gate(OpClass::Quick).acquire().await;
        let quick_sent = gates.gate(OpClass::Quick).reserve_send();
        let lesson = gates.throttled(OpClass::Quick, Duration::from_millis(100));
        assert_eq!(lesson, Lesson::SharedSlot);
        let shared = Arc::clone(gates.gate(OpClass::Quick));
        assert!(Arc::ptr_eq(&shared, gates.gate(OpClass::Generation)));
        // The next slot is a full (slightly widened) generation period after the quick call.
        shared.acquire().await;
        assert!(start.elapsed() >= quick_sent - start + Duration::from_secs(3));
        assert!(shared.reserve_send() >= quick_sent + Duration::from_secs(3));
        // Later 429s teach nothing new.
        let lesson = gates.throttled(OpClass::Quick, Duration::from_millis(100));
        assert_eq!(lesson, Lesson::OwnPace);
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_held_up_past_the_next_reservation_still_keeps_the_spacing() {
        let gate = Gate::new(Some(Duration::from_secs(3)));
        let start = Instant::now();
        let first = gate.reserve_send();
        let second = gate.reserve_send();
        assert_eq!(
            (first - start, second - start),
            (Duration::ZERO, Duration::from_secs(3))
        );
        // The first is held up (a balance read on the wire) until 4 s.
        tokio::time::sleep_until(start + Duration::from_secs(4)).await;
        assert_eq!(gate.claim_send(), Ok(()));
        // The second, due at 3 s, waits until a period after the first left.
        assert_eq!(gate.claim_send(), Err(start + Duration::from_secs(7)));
        tokio::time::sleep_until(start + Duration::from_secs(7)).await;
        assert_eq!(gate.claim_send(), Ok(()));
        // And the next reservation counts from that real departure.
        assert_eq!(gate.reserve_send() - start, Duration::from_secs(10));
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
