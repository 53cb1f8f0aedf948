//! Delays between attempts, as a pure function of the policy and the attempt.

use std::time::Duration;

use rand::Rng;

use crate::plan::RetryPolicy;

/// The delay before attempt `next` (2 for the first retry): exponential from
/// `initial` by `factor`, capped at `max`, then spread by ±`jitter`, and
/// never shorter than a server's `Retry-After`.
pub(crate) fn delay(
    policy: &RetryPolicy,
    next: u32,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Duration {
    let exponent = next.saturating_sub(2).min(64) as i32;
    let base = policy.initial.as_secs_f64() * policy.factor.powi(exponent);
    let capped = base.min(policy.max.as_secs_f64());
    let spread = if policy.jitter > 0.0 {
        rng.random_range(-policy.jitter..=policy.jitter)
    } else {
        0.0
    };
    let jittered = Duration::from_secs_f64((capped * (1.0 + spread)).max(0.0));
    retry_after.map_or(jittered, |r| jittered.max(r))
}

/// `d` with ±`jitter` spread.
pub(crate) fn jittered(d: Duration, jitter: f64, rng: &mut impl Rng) -> Duration {
    if jitter <= 0.0 {
        return d;
    }
    let spread = rng.random_range(-jitter..=jitter);
    Duration::from_secs_f64((d.as_secs_f64() * (1.0 + spread)).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn policy(jitter: f64) -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            initial: Duration::from_secs(2),
            max: Duration::from_secs(10),
            factor: 2.0,
            jitter,
        }
    }

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let mut rng = StdRng::seed_from_u64(1);
        let secs: Vec<u64> = (2..=6)
            .map(|n| delay(&policy(0.0), n, None, &mut rng).as_secs())
            .collect();
        assert_eq!(secs, vec![2, 4, 8, 10, 10]);
    }

    #[test]
    fn retry_after_wins_when_longer_and_jitter_stays_in_bounds() {
        let mut rng = StdRng::seed_from_u64(7);
        assert_eq!(
            delay(&policy(0.0), 2, Some(Duration::from_secs(30)), &mut rng),
            Duration::from_secs(30)
        );
        for n in 2..50 {
            let d = delay(&policy(0.5), n, None, &mut rng).as_secs_f64();
            let base = (2.0 * 2f64.powi(n as i32 - 2)).min(10.0);
            assert!(d >= base * 0.5 - 1e-9 && d <= base * 1.5 + 1e-9, "{n}: {d}");
        }
    }
}
