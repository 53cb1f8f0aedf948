//! When each remote task is asked again.
//!
//! The adaptive schedule (the default) keeps one promise: a task that
//! finishes no earlier than the lower edge of its operation's latency
//! window is seen done within the lateness budget of finishing. With a
//! budget of a fraction `r` of the time the task took, the polls that keep
//! it with the fewest requests are geometric: the first at `lo × (1 + r)`
//! (a task done at `lo` is then seen `r × lo` late at most), each next one
//! `r ×` the time elapsed after the last. With a budget of a duration `d`,
//! the first is at `lo + d` and the next every `d`. Only the lower edge
//! `lo` moves the polls, so that is what the run learns, per operation:
//!
//! - **down**, from probes: every [`PROBE_EVERY`]th task of an operation is
//!   asked once at `lo` itself; if it is done there, tasks finish before
//!   the window the run believes in, and `lo` steps down one spacing. A
//!   probe costs one poll; one early task moves `lo` one step at most.
//! - **up**, from evidence that the window starts later: when none of the
//!   last [`RAISE_AFTER`] tasks was done at its first poll, `lo` rises to
//!   the second-earliest time one of them was still seen pending (never
//!   past a task's certain lower bound, and one early outlier is ignored).
//!
//! The fixed schedule (`poll: { initial_delay, interval }`) learns nothing.
//! Every time here is at real-world scale; delays are divided by the run's
//! time scale when they are slept.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rand::Rng;

use super::backoff;
use crate::plan::{Lateness, PollPolicy, PollSchedule};
use crate::prices::{LatencyRange, expected_latency};

/// Every this many tasks of an operation, one is probed at the window's lower edge.
pub(crate) const PROBE_EVERY: u64 = 8;
/// Tasks in a row that must all be pending at their first poll before the
/// lower edge is raised.
pub(crate) const RAISE_AFTER: usize = 48;
/// The window of an operation the catalogue has none for: first asked
/// after a second, then as the budget says.
const UNKNOWN: LatencyRange = LatencyRange::secs(1, 60);

/// What the run knows about when its tasks finish.
#[derive(Debug, Default)]
pub(crate) struct Learned {
    by_operation: HashMap<&'static str, Window>,
}

/// What the run has learnt of one operation.
#[derive(Debug)]
struct Window {
    /// No task is expected to finish earlier than this.
    lo: Duration,
    /// Tasks started so far.
    started: u64,
    /// The latest non-probe tasks since `lo` last moved.
    seen: VecDeque<Seen>,
}

/// When a finished task was last seen pending and then done.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// `None` when its first poll found it done.
    pending: Option<Duration>,
}

/// One task's place in its schedule.
#[derive(Debug, Clone)]
pub(crate) struct TaskClock {
    /// When its current poll is due, after its submit was accepted (or, on
    /// resume, after it was taken up).
    due: Duration,
    /// When a poll last found it pending, after it was accepted.
    pending: Option<Duration>,
    /// Its first poll is a probe at the window's lower edge.
    probe: bool,
    /// Its start is known: what it shows may be learnt from.
    learn: bool,
}

impl Learned {
    fn window(&mut self, operation: &'static str) -> &mut Window {
        self.by_operation
            .entry(operation)
            .or_insert_with(|| Window {
                lo: expected_latency(operation).unwrap_or(UNKNOWN).min,
                started: 0,
                seen: VecDeque::new(),
            })
    }

    /// The lower edge the run now believes in for `operation`.
    #[cfg(test)]
    pub(crate) fn lower_edge(&mut self, operation: &'static str) -> Duration {
        self.window(operation).lo
    }

    /// A task of `operation` accepted just now: its clock, and the delay
    /// (scaled) before its first poll.
    pub(crate) fn accepted(
        &mut self,
        operation: &'static str,
        policy: &PollPolicy,
        time_scale: f64,
        rng: &mut impl Rng,
    ) -> (TaskClock, Duration) {
        let (due, probe) = match policy.schedule {
            PollSchedule::Fixed { initial_delay, .. } => {
                (backoff::jittered(initial_delay, policy.jitter, rng), false)
            }
            PollSchedule::Adaptive { lateness } => {
                let window = self.window(operation);
                window.started += 1;
                let probe = window.started.is_multiple_of(PROBE_EVERY);
                let due = if probe {
                    window.lo
                } else {
                    shortened(first_poll(lateness, window.lo), policy.jitter, rng)
                };
                (due, probe)
            }
        };
        let clock = TaskClock {
            due,
            pending: None,
            probe,
            learn: true,
        };
        (clock, due.div_f64(time_scale))
    }

    /// A task taken up again (accepted by an earlier run, at a time not
    /// known): asked at once, then as if it had started now.
    pub(crate) fn resumed() -> TaskClock {
        TaskClock {
            due: Duration::ZERO,
            pending: None,
            probe: false,
            learn: false,
        }
    }

    /// The poll due now found the task not done (pending, or the poll
    /// failed): the delay (scaled) before the next.
    pub(crate) fn pending(
        &mut self,
        operation: &'static str,
        policy: &PollPolicy,
        clock: &mut TaskClock,
        time_scale: f64,
        rng: &mut impl Rng,
    ) -> Duration {
        let gap = match policy.schedule {
            PollSchedule::Fixed { interval, .. } => backoff::jittered(interval, policy.jitter, rng),
            PollSchedule::Adaptive { lateness } => {
                let lo = self.window(operation).lo;
                if clock.probe && clock.pending.is_none() {
                    // After a probe, back on the task's ordinary schedule.
                    let first = shortened(first_poll(lateness, lo), policy.jitter, rng);
                    first.saturating_sub(clock.due)
                } else {
                    shortened(next_gap(lateness, clock.due, lo), policy.jitter, rng)
                }
            }
        };
        clock.pending = Some(clock.due);
        clock.due += gap;
        gap.div_f64(time_scale)
    }

    /// The poll due now found the task done: what it shows is learnt.
    pub(crate) fn done(&mut self, operation: &'static str, policy: &PollPolicy, clock: &TaskClock) {
        let PollSchedule::Adaptive { lateness } = policy.schedule else {
            return;
        };
        if !clock.learn {
            return;
        }
        let window = self.window(operation);
        if clock.probe {
            if clock.pending.is_none() {
                // Done before the lower edge: it lies lower.
                window.lo = step_down(lateness, window.lo);
                window.seen.clear();
            }
            return;
        }
        window.seen.push_back(Seen {
            pending: clock.pending,
        });
        if window.seen.len() > RAISE_AFTER {
            window.seen.pop_front();
        }
        if window.seen.len() < RAISE_AFTER {
            return;
        }
        let mut lows: Vec<Duration> = window.seen.iter().filter_map(|s| s.pending).collect();
        if lows.len() < window.seen.len() {
            return;
        }
        lows.sort_unstable();
        if let Some(&second) = lows.get(1)
            && second > window.lo
        {
            window.lo = second;
            window.seen.clear();
        }
    }
}

#[cfg(test)]
impl TaskClock {
    /// When its current poll is due (at real-world scale, after it started).
    pub(crate) fn due(&self) -> Duration {
        self.due
    }
}

/// The first poll that keeps the budget for a task done at `lo`.
fn first_poll(lateness: Lateness, lo: Duration) -> Duration {
    match lateness {
        Lateness::Fraction(r) => lo.mul_f64(1.0 + r),
        Lateness::Within(d) => lo + d,
    }
}

/// The longest wait after a poll at `at` that keeps the budget, for a task
/// that finished just after it (and no earlier than `lo`).
fn next_gap(lateness: Lateness, at: Duration, lo: Duration) -> Duration {
    match lateness {
        Lateness::Fraction(r) => at.max(lo).mul_f64(r),
        Lateness::Within(d) => d,
    }
    .max(Duration::from_millis(1))
}

/// One spacing below `lo`.
fn step_down(lateness: Lateness, lo: Duration) -> Duration {
    match lateness {
        Lateness::Fraction(r) => lo.div_f64(1.0 + r),
        Lateness::Within(d) => lo.saturating_sub(d),
    }
}

/// `d` shortened by up to `jitter` of it, never lengthened: polls spread
/// without breaking the budget.
fn shortened(d: Duration, jitter: f64, rng: &mut impl Rng) -> Duration {
    if jitter <= 0.0 {
        return d;
    }
    d.mul_f64(1.0 - rng.random_range(0.0..jitter.min(1.0)))
}

/// How long a task of `operation` is expected to take before it is seen
/// done, at real-world scale: the ETA's guess until one has finished.
pub(crate) fn expected_wait(policy: &PollPolicy, operation: &str) -> Duration {
    match policy.schedule {
        PollSchedule::Fixed { initial_delay, .. } => initial_delay,
        PollSchedule::Adaptive { .. } => expected_latency(operation).unwrap_or(UNKNOWN).middle(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn adaptive(lateness: Lateness) -> PollPolicy {
        PollPolicy {
            schedule: PollSchedule::Adaptive { lateness },
            jitter: 0.0,
            timeout: S(900),
        }
    }

    /// The poll times of one task that is never done, up to `until`.
    fn times(learned: &mut Learned, op: &'static str, p: &PollPolicy, until: Duration) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(0);
        let (mut clock, _) = learned.accepted(op, p, 1.0, &mut rng);
        let mut out = Vec::new();
        while clock.due() <= until {
            out.push(clock.due().as_secs_f64());
            learned.pending(op, p, &mut clock, 1.0, &mut rng);
        }
        out
    }

    #[test]
    fn a_fractional_budget_polls_geometrically_from_the_window_s_lower_edge() {
        let p = adaptive(Lateness::Fraction(0.25));
        let got = times(&mut Learned::default(), "stems_basic", &p, S(190));
        assert_eq!(got, vec![75.0, 93.75, 117.1875, 146.484375, 183.10546875]);
    }

    #[test]
    fn a_duration_budget_polls_evenly_after_the_lower_edge() {
        let p = adaptive(Lateness::Within(S(20)));
        let got = times(&mut Learned::default(), "create_music", &p, S(160));
        assert_eq!(got, vec![110.0, 130.0, 150.0]);
    }

    #[test]
    fn every_eighth_task_is_a_probe_at_the_lower_edge_and_a_hit_lowers_it() {
        let p = adaptive(Lateness::Fraction(0.25));
        let mut learned = Learned::default();
        let mut rng = StdRng::seed_from_u64(0);
        for n in 1..=PROBE_EVERY {
            let (clock, delay) = learned.accepted("stems_basic", &p, 2.0, &mut rng);
            let want = if n == PROBE_EVERY { S(60) } else { S(75) };
            assert_eq!((clock.due(), delay), (want, want / 2), "task {n}");
            if n == PROBE_EVERY {
                learned.done("stems_basic", &p, &clock);
            }
        }
        assert_eq!(learned.lower_edge("stems_basic"), S(48));
    }

    #[test]
    fn a_probe_that_is_pending_goes_back_to_the_ordinary_schedule() {
        let p = adaptive(Lateness::Fraction(0.25));
        let mut learned = Learned::default();
        let mut rng = StdRng::seed_from_u64(0);
        for _ in 1..PROBE_EVERY {
            learned.accepted("create_music", &p, 1.0, &mut rng);
        }
        let (mut clock, _) = learned.accepted("create_music", &p, 1.0, &mut rng);
        assert_eq!(clock.due(), S(90));
        learned.pending("create_music", &p, &mut clock, 1.0, &mut rng);
        assert_eq!(clock.due(), Duration::from_secs_f64(112.5));
        learned.done("create_music", &p, &clock);
        assert_eq!(learned.lower_edge("create_music"), S(90));
    }

    #[test]
    fn the_lower_edge_rises_only_when_no_task_in_a_long_row_was_done_at_its_first_poll() {
        let p = adaptive(Lateness::Fraction(0.5));
        let op = "create_music";
        let mut learned = Learned::default();
        let mut rng = StdRng::seed_from_u64(0);
        // Tasks that take 300 s, against a window from 90 s.
        let finish = |learned: &mut Learned, rng: &mut StdRng| {
            let (mut clock, _) = learned.accepted(op, &p, 1.0, rng);
            while clock.due() < S(300) {
                learned.pending(op, &p, &mut clock, 1.0, rng);
            }
            learned.done(op, &p, &clock);
        };
        let mut n = 0;
        while learned.lower_edge(op) == S(90) {
            finish(&mut learned, &mut rng);
            n += 1;
        }
        // 48 ordinary tasks and the probes between them.
        assert_eq!(
            n,
            RAISE_AFTER as u64 + RAISE_AFTER as u64 / (PROBE_EVERY - 1)
        );
        // The second-earliest pending time: 90 × 1.5 × 1.5 × 1.5 (all the same here).
        assert_eq!(
            learned.lower_edge(op),
            Duration::from_secs_f64(303.75 / 1.5)
        );
        // One task done at its first poll in the row keeps the edge where it is.
        let mut learned = Learned::default();
        let (clock, _) = learned.accepted(op, &p, 1.0, &mut rng);
        learned.done(op, &p, &clock);
        while learned.window(op).seen.len() < RAISE_AFTER {
            finish(&mut learned, &mut rng);
        }
        assert_eq!(learned.lower_edge(op), S(90));
    }

    #[test]
    fn jitter_only_shortens_an_adaptive_delay() {
        let mut p = adaptive(Lateness::Fraction(0.25));
        p.jitter = 0.5;
        let mut learned = Learned::default();
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..50 {
            let (mut clock, _) = learned.accepted("upload", &p, 1.0, &mut rng);
            if clock.probe {
                continue;
            }
            assert!(clock.due() <= Duration::from_secs_f64(18.75));
            let at = clock.due();
            learned.pending("upload", &p, &mut clock, 1.0, &mut rng);
            assert!(clock.due() - at <= at.max(S(15)).mul_f64(0.25));
        }
    }

    #[test]
    fn the_expected_wait_is_the_window_s_middle_or_the_fixed_first_delay() {
        let p = adaptive(Lateness::Fraction(0.25));
        assert_eq!(expected_wait(&p, "create_music"), S(120));
        let fixed = PollPolicy {
            schedule: PollSchedule::Fixed {
                initial_delay: S(20),
                interval: S(15),
            },
            ..p
        };
        assert_eq!(expected_wait(&fixed, "create_music"), S(20));
    }
}
