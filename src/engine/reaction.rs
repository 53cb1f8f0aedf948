//! The engine's answer to everything that can go wrong with an attempt,
//! as one pure function: what happened × where (submit or
//! poll) × which attempt × the step's policies → what to do next.
//!
//! The driver only carries the answer out; to learn "what happens when a
//! poll answers 429", read [`react`].

use std::time::Duration;

use rand::Rng;

use super::ErrorKind;
use super::StopReason;
use super::backoff;
use crate::plan::RetryPolicy;

/// How many 429s in a row one submit may meet before it fails.
pub(crate) const MAX_THROTTLES: u32 = 20;

/// What went wrong, and where.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Trouble {
    /// A submit was answered with an error of this class.
    Submit(ErrorKind),
    /// A poll was answered with an error of this class (the task may still be running).
    Poll(ErrorKind),
    /// A poll says the task is not finished yet.
    Pending,
    /// A poll says the remote task failed (the service refunds it).
    TaskFailed,
}

/// Everything [`react`] weighs besides the trouble itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Situation<'a> {
    pub retry: &'a RetryPolicy,
    /// When the poll schedule asks a task that is not done again (scaled).
    pub next_poll: Duration,
    /// The attempt that went wrong (1 for the first).
    pub attempt: u32,
    /// 429s this instance's submits met, this one included.
    pub throttles: u32,
    /// The server's `Retry-After`, if it sent one.
    pub retry_after: Option<Duration>,
    /// The task's deadline has passed.
    pub overdue: bool,
    /// The run is stopping: nothing new is sent.
    pub stopping: bool,
    /// Some submit of this run was accepted already.
    pub any_accepted: bool,
    /// Divides every policy duration.
    pub time_scale: f64,
}

/// What the engine does next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reaction {
    /// Send the same request again after `delay`, using up an attempt.
    Retry { delay: Duration },
    /// Slow the submits of its rate-limit class down, pause them for
    /// `delay`, then send this one again without using up an attempt.
    Throttle { delay: Duration },
    /// Ask the task again after `delay`.
    Repoll { delay: Duration },
    /// The instance fails; the run goes on.
    Fail,
    /// The instance fails and the run stops submitting.
    FailAndStop(StopReason),
    /// The task did not finish in time (it was paid for and may still finish).
    Timeout,
}

/// The one place that decides how the engine meets trouble.
pub(crate) fn react(trouble: Trouble, s: &Situation<'_>, rng: &mut impl Rng) -> Reaction {
    let scale = |d: Duration| d.div_f64(s.time_scale);
    let floor = s.retry_after.unwrap_or_default();
    let backoff = |next: u32, retry_after: Option<Duration>, rng: &mut _| {
        scale(backoff::delay(s.retry, next, retry_after, rng))
    };
    match trouble {
        Trouble::Submit(ErrorKind::RateLimited) if s.throttles > MAX_THROTTLES => Reaction::Fail,
        Trouble::Submit(ErrorKind::RateLimited) => {
            let delay = backoff(s.throttles + 1, s.retry_after, rng).max(floor);
            Reaction::Throttle { delay }
        }
        Trouble::Submit(ErrorKind::Transient) if s.attempt < s.retry.attempts => {
            let delay = backoff(s.attempt + 1, s.retry_after, rng);
            Reaction::Retry { delay }
        }
        Trouble::Submit(ErrorKind::OutOfCredits) => Reaction::FailAndStop(StopReason::OutOfCredits),
        Trouble::Submit(ErrorKind::Unauthorised) | Trouble::Poll(ErrorKind::Unauthorised) => {
            Reaction::FailAndStop(StopReason::Unauthorised {
                before_any_accepted: !s.any_accepted,
            })
        }
        // Invalid, moderation, in doubt (never resent), transient with no attempt left.
        Trouble::Submit(_) => Reaction::Fail,
        Trouble::Pending | Trouble::Poll(ErrorKind::Transient | ErrorKind::RateLimited)
            if s.overdue =>
        {
            Reaction::Timeout
        }
        Trouble::Pending => Reaction::Repoll { delay: s.next_poll },
        Trouble::Poll(ErrorKind::Transient | ErrorKind::RateLimited) => Reaction::Repoll {
            delay: s.next_poll.max(floor),
        },
        // A file of the finished task could not be saved (its download was
        // already retried), invalid, moderation: asking again cannot help.
        Trouble::Poll(_) => Reaction::Fail,
        Trouble::TaskFailed if s.attempt < s.retry.attempts && !s.stopping => Reaction::Retry {
            delay: backoff(s.attempt + 1, None, rng),
        },
        Trouble::TaskFailed => Reaction::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn retry() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            initial: S(2),
            max: S(60),
            factor: 2.0,
            jitter: 0.0,
        }
    }

    /// One row: the trouble, the attempt, throttles so far, Retry-After,
    /// overdue, stopping → the reaction.
    type Row = (Trouble, u32, u32, Option<u64>, bool, bool, Reaction);

    #[test]
    fn every_row_of_the_error_table() {
        use ErrorKind as K;
        use Reaction::*;
        use Trouble::*;
        let unauthorised = FailAndStop(StopReason::Unauthorised {
            before_any_accepted: false,
        });
        let rows: Vec<Row> = vec![
            // invalid request: fail, never retry
            (Submit(K::Invalid), 1, 0, None, false, false, Fail),
            (Poll(K::Invalid), 1, 0, None, false, false, Fail),
            // unauthorised: stop the run
            (
                Submit(K::Unauthorised),
                1,
                0,
                None,
                false,
                false,
                unauthorised.clone(),
            ),
            (
                Poll(K::Unauthorised),
                1,
                0,
                None,
                false,
                false,
                unauthorised,
            ),
            // out of credits: stop submitting (what is in flight is still polled)
            (
                Submit(K::OutOfCredits),
                1,
                0,
                None,
                false,
                false,
                FailAndStop(StopReason::OutOfCredits),
            ),
            // moderation: fail that step, never retry, keep going
            (Submit(K::Moderation), 1, 0, None, false, false, Fail),
            (Poll(K::Moderation), 1, 0, None, false, false, Fail),
            // rate limited on submit: Retry-After if longer, else backoff; slow down
            (
                Submit(K::RateLimited),
                1,
                1,
                None,
                false,
                false,
                Throttle { delay: S(2) },
            ),
            (
                Submit(K::RateLimited),
                1,
                2,
                None,
                false,
                false,
                Throttle { delay: S(4) },
            ),
            (
                Submit(K::RateLimited),
                1,
                3,
                Some(30),
                false,
                false,
                Throttle { delay: S(30) },
            ),
            (
                Submit(K::RateLimited),
                1,
                MAX_THROTTLES,
                None,
                false,
                false,
                Throttle { delay: S(60) },
            ),
            (
                Submit(K::RateLimited),
                1,
                MAX_THROTTLES + 1,
                None,
                false,
                false,
                Fail,
            ),
            // rate limited on a poll: ask again after the interval or Retry-After
            (
                Poll(K::RateLimited),
                1,
                0,
                None,
                false,
                false,
                Repoll { delay: S(15) },
            ),
            (
                Poll(K::RateLimited),
                1,
                0,
                Some(40),
                false,
                false,
                Repoll { delay: S(40) },
            ),
            (Poll(K::RateLimited), 1, 0, None, true, false, Timeout),
            // transient: retry with backoff while attempts are left
            (
                Submit(K::Transient),
                1,
                0,
                None,
                false,
                false,
                Retry { delay: S(2) },
            ),
            (
                Submit(K::Transient),
                2,
                0,
                None,
                false,
                false,
                Retry { delay: S(4) },
            ),
            (
                Submit(K::Transient),
                2,
                0,
                Some(10),
                false,
                false,
                Retry { delay: S(10) },
            ),
            (Submit(K::Transient), 3, 0, None, false, false, Fail),
            (
                Poll(K::Transient),
                1,
                0,
                None,
                false,
                false,
                Repoll { delay: S(15) },
            ),
            (Poll(K::Transient), 1, 0, None, true, false, Timeout),
            // the task finished but its file could not be saved: no re-poll loop
            (Poll(K::Local), 1, 0, None, false, false, Fail),
            (Poll(K::Local), 1, 0, None, true, false, Fail),
            // in doubt: never resend
            (Submit(K::InDoubt), 1, 0, None, false, false, Fail),
            (Poll(K::InDoubt), 1, 0, None, false, false, Fail),
            // failed task (refunded): retry per policy, not while stopping
            (TaskFailed, 1, 0, None, false, false, Retry { delay: S(2) }),
            (TaskFailed, 2, 0, None, false, false, Retry { delay: S(4) }),
            (TaskFailed, 3, 0, None, false, false, Fail),
            (TaskFailed, 1, 0, None, false, true, Fail),
            // still running: poll again, until the deadline
            (Pending, 1, 0, None, false, false, Repoll { delay: S(15) }),
            (Pending, 1, 0, None, true, false, Timeout),
            // a local failure on submit (nothing was sent)
            (Submit(K::Local), 1, 0, None, false, false, Fail),
            (Submit(K::Timeout), 1, 0, None, false, false, Fail),
        ];
        let retry = retry();
        let mut rng = StdRng::seed_from_u64(0);
        for (trouble, attempt, throttles, retry_after, overdue, stopping, want) in rows {
            let s = Situation {
                retry: &retry,
                next_poll: S(15),
                attempt,
                throttles,
                retry_after: retry_after.map(S),
                overdue,
                stopping,
                any_accepted: true,
                time_scale: 1.0,
            };
            let got = react(trouble, &s, &mut rng);
            assert_eq!(
                got, want,
                "{trouble:?} attempt {attempt}, throttles {throttles}, retry-after {retry_after:?}, overdue {overdue}, stopping {stopping}"
            );
        }
    }

    #[test]
    fn the_time_scale_divides_policy_delays_but_not_the_servers_retry_after() {
        let retry = retry();
        let s = Situation {
            retry: &retry,
            next_poll: S(15),
            attempt: 1,
            throttles: 1,
            retry_after: Some(S(1)),
            overdue: false,
            stopping: false,
            any_accepted: false,
            time_scale: 10.0,
        };
        let mut rng = StdRng::seed_from_u64(0);
        // The sandbox scales its own Retry-After; a scaled backoff never undercuts it.
        assert_eq!(
            react(Trouble::Submit(ErrorKind::RateLimited), &s, &mut rng),
            Reaction::Throttle { delay: S(1) }
        );
        // Refused before anything was accepted: the run could not use the API at all.
        assert_eq!(
            react(Trouble::Submit(ErrorKind::Unauthorised), &s, &mut rng),
            Reaction::FailAndStop(StopReason::Unauthorised {
                before_any_accepted: true
            })
        );
    }
}
