//! How a run is paced: the plan's limits, scaled, plus what the command line adds.

use std::time::Duration;

use crate::plan::Plan;
use crate::prices::OpClass;

/// How a run is paced. Durations in the plan are divided by `time_scale`.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub max_in_flight: usize,
    /// Generation submits per minute (see [`OpClass`]); 0 for no pacing.
    pub submits_per_minute: u32,
    /// Quick paid calls per minute; 0 for no pacing.
    pub quick_calls_per_minute: u32,
    pub polls_per_second: u32,
    /// Divides every duration (poll schedule, backoff, quotas, timeouts).
    pub time_scale: f64,
    /// Stop submitting after the first failure.
    pub fail_fast: bool,
    /// After Ctrl-C, how long to keep polling what is in flight (already scaled).
    pub grace: Duration,
    /// Seeds the jitter.
    pub seed: u64,
    /// Extra spacing between submits, as a fraction of the quota's period, so
    /// that network jitter never makes two submits arrive too close together.
    pub submit_margin: f64,
    /// Credits the run may commit at most; a submit that would cross it is not sent.
    pub max_credits: Option<u64>,
    /// Read the balance around submits to observe what each really cost
    /// (see [`observe`](super::observe)).
    pub observe_charges: bool,
}

impl EngineConfig {
    /// The plan's limits at the given time scale.
    pub fn from_plan(plan: &Plan, time_scale: f64) -> EngineConfig {
        let time_scale = if time_scale > 0.0 { time_scale } else { 1.0 };
        EngineConfig {
            max_in_flight: plan.limits.max_in_flight as usize,
            submits_per_minute: plan.limits.submits_per_minute,
            quick_calls_per_minute: plan.limits.quick_calls_per_minute,
            polls_per_second: plan.limits.polls_per_second,
            time_scale,
            fail_fast: false,
            // Long enough for a song in flight to finish; a second Ctrl-C stops at once.
            grace: Duration::from_secs(600).div_f64(time_scale),
            seed: 0,
            submit_margin: 0.05,
            max_credits: plan.max_credits,
            observe_charges: false,
        }
    }

    pub(crate) fn scale(&self, d: Duration) -> Duration {
        d.div_f64(self.time_scale)
    }

    /// The spacing of paid submits of `class`, `None` when they are not paced.
    pub(crate) fn submit_period(&self, class: OpClass) -> Option<Duration> {
        let per_minute = match class {
            OpClass::Generation => self.submits_per_minute,
            OpClass::Quick => self.quick_calls_per_minute,
        };
        (per_minute > 0).then(|| {
            self.scale(Duration::from_secs(60) / per_minute)
                .mul_f64(1.0 + self.submit_margin.max(0.0))
        })
    }

    /// The spacing of status polls, `None` when they are not paced.
    pub(crate) fn poll_period(&self) -> Option<Duration> {
        (self.polls_per_second > 0)
            .then(|| self.scale(Duration::from_secs(1) / self.polls_per_second))
    }
}
