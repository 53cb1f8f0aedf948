//! Fault injection: which failures to simulate and how often, and the
//! seeded dice that decide each request's fate.
//!
//! Determinism: a request's dice are seeded from the sandbox seed, the
//! request line, a hash of its body and how many identical requests came
//! before it. So the same seed and the same request sequence give the same
//! outcomes however requests for different things interleave.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Probability (0–1) of each simulated failure. Loaded from a YAML faults
/// file (`sonicflow sandbox --faults FILE`); missing keys are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Any request answers 500 `Internal Server Error.` (nothing charged).
    pub http_500: f64,
    /// A paid submit answers 429 before anything is charged.
    pub http_429: f64,
    /// A task ends `failed` and its credits are refunded.
    pub task_failed: f64,
    /// A task stays `running` forever (its credits stay charged).
    pub task_stuck: f64,
    /// A paid submit is charged and performed, then the connection is
    /// dropped instead of answering: the client cannot know it succeeded.
    pub drop_after_charge: f64,
    /// The answer is cut short into invalid JSON (for a paid submit the
    /// charge and the task stand).
    pub malformed_json: f64,
    /// A full stems split ends `failed` (refunded), on top of
    /// `task_failed`: the service was seen failing full splits often.
    pub stems_full_failure: f64,
}

impl Faults {
    /// Reads a faults file's text; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Faults, String> {
        let faults: Faults = serde_yaml::from_str(text)
            .map_err(|e| format!("faults file `{origin}` is invalid: {e}"))?;
        faults
            .check()
            .map_err(|e| format!("faults file `{origin}`: {e}"))?;
        Ok(faults)
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        let all = [
            ("http_500", self.http_500),
            ("http_429", self.http_429),
            ("task_failed", self.task_failed),
            ("task_stuck", self.task_stuck),
            ("drop_after_charge", self.drop_after_charge),
            ("malformed_json", self.malformed_json),
            ("stems_full_failure", self.stems_full_failure),
        ];
        match all.iter().find(|(_, p)| !(0.0..=1.0).contains(p)) {
            Some((name, p)) => Err(format!(
                "`{name}` is `{p}`, a probability must be within 0 and 1"
            )),
            None => Ok(()),
        }
    }
}

/// The decided fate of one request, plus the generator for everything else
/// random about it (ids excepted: they come from a counter).
pub(crate) struct Roll {
    pub http_500: bool,
    pub http_429: bool,
    pub drop_after_charge: bool,
    pub malformed_json: bool,
    pub rng: StdRng,
}

impl Roll {
    /// `occurrence` counts earlier requests with the same `digest`.
    pub(crate) fn new(faults: &Faults, digest: &[u8; 32], occurrence: u64) -> Roll {
        let mut seed = Sha256::new();
        seed.update(digest);
        seed.update(occurrence.to_le_bytes());
        let mut rng = StdRng::from_seed(seed.finalize().into());
        // Always draw every die in the same order, so adding a fault kind
        // with probability 0 never shifts the others.
        let mut hit = |p: f64| rng.random::<f64>() < p;
        Roll {
            http_500: hit(faults.http_500),
            http_429: hit(faults.http_429),
            drop_after_charge: hit(faults.drop_after_charge),
            malformed_json: hit(faults.malformed_json),
            rng,
        }
    }

    /// Whether the next task of this request fails, or never finishes. Drawn
    /// per task, so each item of a batch has its own fate.
    pub(crate) fn task_fate(&mut self, faults: &Faults) -> (bool, bool) {
        let failed = self.rng.random::<f64>() < faults.task_failed;
        let stuck = self.rng.random::<f64>() < faults.task_stuck;
        (failed, stuck)
    }

    /// Whether a die with probability `p` hits. Drawn only where a fault
    /// applies (a full split), so other requests' dice stay as they were.
    pub(crate) fn hit(&mut self, p: f64) -> bool {
        self.rng.random::<f64>() < p
    }

    /// A value uniformly within `min..=max`.
    pub(crate) fn between(&mut self, min: f64, max: f64) -> f64 {
        if max <= min {
            return min;
        }
        self.rng.random_range(min..=max)
    }
}

/// The identity of a request for the dice: seed, method, path and body.
pub(crate) fn request_digest(seed: u64, method: &str, path: &str, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(method.as_bytes());
    h.update(b" ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_file_reads_probabilities_and_rejects_bad_ones() {
        let f = Faults::from_yaml("http_500: 0.5\ntask_failed: 1\n", "f.yaml").unwrap();
        assert_eq!(f.http_500, 0.5);
        assert_eq!(f.task_failed, 1.0);
        assert_eq!(f.http_429, 0.0);
        let err = Faults::from_yaml("http_500: 2\n", "f.yaml").unwrap_err();
        assert!(err.contains("`http_500`"), "{err}");
        let err = Faults::from_yaml("http_5OO: 0.1\n", "f.yaml").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn same_digest_and_occurrence_roll_the_same() {
        let f = Faults {
            http_500: 0.5,
            task_failed: 0.5,
            ..Faults::default()
        };
        let d = request_digest(7, "POST", "/x", b"{}");
        let outcomes = |occ| {
            let mut r = Roll::new(&f, &d, occ);
            (r.http_500, r.task_fate(&f), r.between(0.0, 1.0).to_bits())
        };
        assert_eq!(outcomes(3), outcomes(3));
        let differ = (0..20).any(|i| outcomes(i) != outcomes(i + 1));
        assert!(differ);
    }
}
