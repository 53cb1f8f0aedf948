//! How long a run still has to go, from its pacing: the arithmetic behind
//! the live view's ETA, kept apart so it can be checked by hand.
//!
//! Three things bound the time left, and the estimate is the largest:
//! - the pace: every submit still to send waits its turn at its class's
//!   spacing, and the last one still has its own task to wait for;
//! - the slots: at most `max_in_flight` tasks wait at once, so the waits
//!   left, added up, are shared between that many;
//! - the critical path: a step starts only once the steps it needs are
//!   done, so the longest chain of steps with work left waits one task
//!   after another.
//!
//! A step's wait is the mean time its tasks took from accepted to done in
//! this run, or before any has finished, what its poll schedule expects:
//! the middle of its operation's latency window, or the first delay of a
//! fixed schedule.

use std::time::Duration;

use crate::engine::EngineConfig;
use crate::engine::poll_schedule::expected_wait;
use crate::plan::Plan;
use crate::prices::OpClass;

/// What the plan says about the pace of a run: the submit spacing of each
/// class, the slots, and each step's class, dependencies and first guess
/// of a wait.
#[derive(Debug, Clone, Default)]
pub struct Pace {
    /// The spacing of paid submits, by [`OpClass::index`]; `None` when unpaced.
    pub(crate) spacing: [Option<Duration>; 2],
    pub(crate) max_in_flight: usize,
    /// Per plan step, in plan order (dependencies first).
    pub(crate) steps: Vec<StepPace>,
    /// Credits the run is expected to spend, what it spent before a resume included.
    pub(crate) planned_credits: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StepPace {
    pub(crate) class: OpClass,
    /// Positions in the plan of the steps it waits for (all earlier).
    pub(crate) deps: Vec<usize>,
    /// Calls the plan expects it to make over every row (at most).
    pub(crate) calls: u64,
    /// The wait assumed until one of its tasks has finished.
    pub(crate) first_guess: Duration,
}

impl Pace {
    /// The pace of `plan` run with `config`, expected to spend `planned_credits`.
    pub fn of(plan: &Plan, config: &EngineConfig, planned_credits: u64) -> Pace {
        let steps = plan
            .steps
            .iter()
            .map(|s| StepPace {
                class: OpClass::of(s.operation),
                deps: s.deps.clone(),
                calls: if s.scope.may_submit() {
                    s.max_calls()
                } else {
                    0
                },
                first_guess: config.scale(expected_wait(&s.poll, s.operation)),
            })
            .collect();
        Pace {
            spacing: [
                config.submit_period(OpClass::Generation),
                config.submit_period(OpClass::Quick),
            ],
            max_in_flight: config.max_in_flight.max(1),
            steps,
            planned_credits,
        }
    }
}

/// Where one step stands now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct StepLeft {
    /// Instances not sent yet (nor reused, skipped or finished).
    pub(crate) to_submit: u64,
    /// Instances sent and not finished.
    pub(crate) in_flight: u64,
    /// The mean wait of its tasks that finished in this run.
    pub(crate) observed_wait: Option<Duration>,
    /// How long the youngest of its tasks in flight has been out.
    pub(crate) youngest: Duration,
}

impl StepLeft {
    fn remaining(&self) -> u64 {
        self.to_submit + self.in_flight
    }
}

/// The time left, `None` when the plan's pace is unknown (no steps).
pub(crate) fn eta(pace: &Pace, left: &[StepLeft]) -> Option<Duration> {
    if pace.steps.is_empty() {
        return None;
    }
    let wait = |s: usize| -> Duration {
        left.get(s)
            .and_then(|l| l.observed_wait)
            .unwrap_or_else(|| pace.steps[s].first_guess)
    };
    let at = |s: usize| left.get(s).copied().unwrap_or_default();
    let n = pace.steps.len();

    // The pace: per class, submits left × spacing, then the last one's task.
    let mut by_pace = Duration::ZERO;
    for class in [OpClass::Generation, OpClass::Quick] {
        let of_class = (0..n).filter(|&s| pace.steps[s].class == class && at(s).to_submit > 0);
        let submits: u64 = of_class.clone().map(|s| at(s).to_submit).sum();
        let Some(last_wait) = of_class.map(wait).min() else {
            continue;
        };
        let spacing = pace.spacing[class.index()].unwrap_or(Duration::ZERO);
        by_pace = by_pace.max(times(spacing, submits) + last_wait);
    }

    // The slots: every wait left, shared between the slots.
    let waits: Duration = (0..n).map(|s| times(wait(s), at(s).remaining())).sum();
    let by_slots = waits / u32::try_from(pace.max_in_flight.max(1)).unwrap_or(u32::MAX);

    // The critical path: a chain of steps with work left, one wait each.
    let mut path = vec![Duration::ZERO; n];
    for s in 0..n {
        let before = pace.steps[s]
            .deps
            .iter()
            .filter(|&&d| d < s)
            .map(|&d| path[d])
            .max()
            .unwrap_or_default();
        // A step with nothing left to send waits only for its youngest task.
        let own = match at(s) {
            l if l.to_submit > 0 => wait(s),
            l if l.in_flight > 0 => wait(s).saturating_sub(l.youngest),
            _ => Duration::ZERO,
        };
        path[s] = before + own;
    }
    let by_path = path.into_iter().max().unwrap_or_default();

    Some(by_pace.max(by_slots).max(by_path))
}

fn times(d: Duration, n: u64) -> Duration {
    d.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn step(class: OpClass, deps: &[usize], guess_secs: u64) -> StepPace {
        StepPace {
            class,
            deps: deps.to_vec(),
            calls: 0,
            first_guess: S * u32::try_from(guess_secs).unwrap_or(0),
        }
    }

    fn pace(steps: Vec<StepPace>, spacing_secs: u64, slots: usize) -> Pace {
        Pace {
            spacing: [Some(S * u32::try_from(spacing_secs).unwrap_or(0)), None],
            max_in_flight: slots,
            steps,
            planned_credits: 0,
        }
    }

    fn left(to_submit: u64, in_flight: u64) -> StepLeft {
        StepLeft {
            to_submit,
            in_flight,
            observed_wait: None,
            youngest: Duration::ZERO,
        }
    }

    #[test]
    fn without_a_plan_there_is_no_estimate() {
        assert_eq!(eta(&Pace::default(), &[]), None);
    }

    #[test]
    fn paced_submits_dominate_a_wide_batch() {
        // 20 songs at one submit every 3 s, each taking 20 s, 10 slots:
        // the last is sent after 60 s and done 20 s later.
        let p = pace(vec![step(OpClass::Generation, &[], 20)], 3, 10);
        assert_eq!(eta(&p, &[left(20, 0)]), Some(S * 80));
    }

    #[test]
    fn few_slots_make_the_waits_queue() {
        // Unpaced, 8 tasks of 10 s through 2 slots: 40 s.
        let p = pace(vec![step(OpClass::Generation, &[], 10)], 0, 2);
        assert_eq!(eta(&p, &[left(6, 2)]), Some(S * 40));
    }

    #[test]
    fn a_chain_waits_one_step_after_another() {
        // song → cover → wav, nothing paced, plenty of slots: 20 + 15 + 1.
        let p = pace(
            vec![
                step(OpClass::Generation, &[], 20),
                step(OpClass::Generation, &[0], 15),
                step(OpClass::Quick, &[1], 1),
            ],
            0,
            50,
        );
        assert_eq!(eta(&p, &[left(1, 0), left(1, 0), left(1, 0)]), Some(S * 36));
        // Once the song is done, only cover and wav are left on the path.
        assert_eq!(eta(&p, &[left(0, 0), left(0, 1), left(1, 0)]), Some(S * 16));
    }

    #[test]
    fn what_the_run_has_seen_replaces_the_first_guess() {
        let p = pace(vec![step(OpClass::Generation, &[], 20)], 0, 10);
        let seen = StepLeft {
            observed_wait: Some(S * 4),
            ..left(1, 0)
        };
        assert_eq!(eta(&p, &[seen]), Some(S * 4));
    }

    #[test]
    fn a_finished_run_has_nothing_left() {
        let p = pace(vec![step(OpClass::Generation, &[], 20)], 3, 10);
        assert_eq!(eta(&p, &[left(0, 0)]), Some(Duration::ZERO));
    }

    #[test]
    fn the_plan_gives_spacing_slots_and_guesses_at_the_run_scale() {
        let plan = crate::plan::from_yaml(
            "version: 1\nname: t\nlimits: { submits_per_minute: 20, max_in_flight: 4 }\nsteps:\n  up:\n    action: upload\n    with: { url: https://example.com/a.mp3 }\n  wav:\n    action: wav\n    with: { clip: \"${{ steps.up.outputs.clip_id }}\" }\n",
        );
        let config = EngineConfig::from_plan(&plan, 10.0);
        let p = Pace::of(&plan, &config, 7);
        assert_eq!(p.max_in_flight, 4);
        assert_eq!(p.planned_credits, 7);
        assert_eq!(p.steps.len(), 2);
        assert_eq!(p.steps[1].deps, vec![0]);
        assert_eq!(p.steps[0].calls, 1);
        assert_eq!(p.steps[0].first_guess, Duration::from_secs(2));
        // 3 s between generation submits, a tenth of it at scale 10, plus the margin.
        let spacing = p.spacing[OpClass::Generation.index()].unwrap_or_default();
        assert!(spacing > Duration::from_millis(300) && spacing < Duration::from_millis(320));
    }
}
