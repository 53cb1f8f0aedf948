//! What a run adds up to, per step, per action and in total: the one
//! account of credits and outcomes that every rendering of a finished (or
//! running, or killed) run shows, read off its `results.json`.

use super::results::{Results, StepResult, StepStatus};

/// The instances of one step (or action, or the whole run) and their credits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreditLine {
    /// The step id, the action's name, or `total`.
    pub name: String,
    pub instances: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Skipped for any reason (a condition included).
    pub skipped: usize,
    /// Still waiting or running (a live or killed run).
    pub unfinished: usize,
    /// Taken from an earlier run, or from this run before it was resumed.
    pub reused: usize,
    pub planned: u64,
    pub charged: u64,
    pub refunded: u64,
    pub in_doubt: u64,
    /// What the balance showed its submits cost; `None` when charges were
    /// not observed, or some submit's charge was not seen on its own.
    pub observed: Option<u64>,
    /// Whether any instance was observed at all (tells "not observed"
    /// from "partly observed").
    observed_any: bool,
    observed_gap: bool,
}

impl CreditLine {
    fn named(name: &str) -> CreditLine {
        CreditLine {
            name: name.to_owned(),
            ..CreditLine::default()
        }
    }

    fn add(&mut self, r: &StepResult) {
        self.instances += 1;
        match r.status {
            StepStatus::Succeeded => self.succeeded += 1,
            StepStatus::Failed => self.failed += 1,
            StepStatus::Skipped | StepStatus::SkippedCondition => self.skipped += 1,
            StepStatus::Waiting | StepStatus::Running => self.unfinished += 1,
        }
        if r.reused_from.is_some() {
            self.reused += 1;
        }
        self.planned += r.credits.planned;
        self.charged += r.credits.charged;
        self.refunded += r.credits.refunded;
        self.in_doubt += r.credits.in_doubt;
        match &r.credits.observed {
            Some(o) => {
                self.observed_any = true;
                if o.unobserved_attempts > 0 {
                    self.observed_gap = true;
                }
                self.observed = Some(self.observed.unwrap_or(0) + o.charged);
            }
            // Sent something with no observation of its own: a gap.
            None if !r.attempts.is_empty() => self.observed_gap = true,
            None => {}
        }
    }

    fn finish(mut self) -> CreditLine {
        if !self.observed_any || self.observed_gap {
            self.observed = None;
        }
        self
    }

    /// `charged - refunded`.
    pub fn net(&self) -> u64 {
        self.charged.saturating_sub(self.refunded)
    }
}

/// Per step (plan order), per action (first-seen order) and the total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overview {
    pub steps: Vec<CreditLine>,
    pub actions: Vec<CreditLine>,
    pub total: CreditLine,
}

impl Overview {
    pub fn of(results: &Results) -> Overview {
        let mut steps: Vec<CreditLine> = Vec::new();
        let mut actions: Vec<CreditLine> = Vec::new();
        let mut total = CreditLine::named("total");
        for r in &results.steps {
            line_for(&mut steps, &r.step).add(r);
            line_for(&mut actions, r.action.name()).add(r);
            total.add(r);
        }
        Overview {
            steps: steps.into_iter().map(CreditLine::finish).collect(),
            actions: actions.into_iter().map(CreditLine::finish).collect(),
            total: total.finish(),
        }
    }
}

fn line_for<'a>(lines: &'a mut Vec<CreditLine>, name: &str) -> &'a mut CreditLine {
    let at = match lines.iter().position(|l| l.name == name) {
        Some(at) => at,
        None => {
            lines.push(CreditLine::named(name));
            lines.len() - 1
        }
    };
    &mut lines[at]
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// One instance of `step` (action `action`) with `status` and credits.
    fn instance(step: &str, action: &str, status: &str, planned: u64, charged: u64) -> Value {
        json!({
            "step": step, "instance": null, "row_key": null, "path": [], "action": action,
            "operation": action, "status": status, "request_hash": null, "task_id": null,
            "credits": { "planned": planned, "charged": charged, "refunded": 0, "in_doubt": 0 },
            "attempts": [], "outputs": null, "files": [], "started_at": null,
            "finished_at": null, "duration_ms": null, "skip_reason": null, "error": null
        })
    }

    fn sent(mut v: Value) -> Value {
        v["attempts"] = json!([{ "attempt": 1, "task_id": null, "error": null,
            "started_at": "2026-12-01T00:00:00.000Z", "finished_at": null }]);
        v
    }

    fn observed(mut v: Value, charged: u64, unobserved: u64) -> Value {
        v["credits"]["observed"] =
            json!({ "charged": charged, "refunded": 0, "unobserved_attempts": unobserved });
        v
    }

    fn results(steps: Vec<Value>) -> Results {
        serde_json::from_value(json!({
            "schema_version": 1,
            "tool": { "name": "sonicflow", "version": "0" },
            "pipeline": { "name": "p", "file": "p.yaml", "sha256": "" },
            "price_table": { "name": "t", "date": "2026-10-07", "source": "", "version": "" },
            "started_at": "2026-12-01T00:00:00.000Z", "finished_at": null,
            "status": "running", "stop_reason": null,
            "totals": { "instances": 0, "succeeded": 0, "failed": 0, "skipped": 0, "running": 0,
                        "waiting": 0, "credits_estimated": 0, "credits_planned": 0,
                        "credits_charged": 0, "credits_refunded": 0 },
            "steps": steps
        }))
        .unwrap()
    }

    #[test]
    fn steps_actions_and_the_total_add_up_outcomes_and_credits() {
        let mut refunded = sent(instance("song", "create", "failed", 15, 15));
        refunded["credits"]["refunded"] = json!(15);
        let mut reused = instance("song", "create", "succeeded", 15, 0);
        reused["reused_from"] = json!("nightly-20261130T000000000Z");
        let mut doubt = sent(instance("cover", "cover", "running", 15, 15));
        doubt["credits"]["in_doubt"] = json!(15);
        let overview = Overview::of(&results(vec![
            sent(instance("song", "create", "succeeded", 15, 15)),
            refunded,
            reused,
            instance("wav", "wav", "skipped_condition", 2, 0),
            instance("wav", "wav", "waiting", 2, 0),
            doubt,
            sent(instance("again", "create", "succeeded", 15, 15)),
        ]));
        let names = |lines: &[CreditLine]| lines.iter().map(|l| l.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&overview.steps), ["song", "wav", "cover", "again"]);
        assert_eq!(names(&overview.actions), ["create", "wav", "cover"]);
        let song = &overview.steps[0];
        assert_eq!(
            (song.instances, song.succeeded, song.failed, song.reused),
            (3, 2, 1, 1)
        );
        assert_eq!(
            (song.planned, song.charged, song.refunded, song.net()),
            (45, 30, 15, 15)
        );
        let wav = &overview.steps[1];
        assert_eq!((wav.skipped, wav.unfinished, wav.charged), (1, 1, 0));
        assert_eq!(overview.actions[0].instances, 4, "create: song and again");
        assert_eq!(overview.actions[0].charged, 45);
        let total = &overview.total;
        assert_eq!(total.name, "total");
        assert_eq!(
            (
                total.instances,
                total.succeeded,
                total.failed,
                total.skipped,
                total.unfinished
            ),
            (7, 3, 1, 1, 2)
        );
        assert_eq!(
            (total.planned, total.charged, total.in_doubt, total.net()),
            (79, 60, 15, 45)
        );
    }

    #[test]
    fn observed_credits_are_a_sum_only_when_every_send_was_seen_on_its_own() {
        // Not observed at all: no number, never 0.
        let none = Overview::of(&results(vec![sent(instance(
            "s",
            "create",
            "succeeded",
            15,
            15,
        ))]));
        assert_eq!(none.total.observed, None);
        // Every send observed on its own: the sum; an instance that sent
        // nothing leaves no gap.
        let all = Overview::of(&results(vec![
            observed(sent(instance("s", "create", "succeeded", 15, 15)), 15, 0),
            observed(sent(instance("s", "create", "succeeded", 15, 15)), 20, 0),
            instance("w", "wav", "skipped", 2, 0),
        ]));
        assert_eq!(all.steps[0].observed, Some(35));
        assert_eq!(
            all.steps[1].observed, None,
            "nothing of it sent, nothing observed"
        );
        assert_eq!(all.total.observed, Some(35));
        // A send not seen on its own, or one with no observation: unknown.
        let shared = Overview::of(&results(vec![
            observed(sent(instance("s", "create", "succeeded", 15, 15)), 15, 0),
            observed(sent(instance("w", "wav", "succeeded", 2, 2)), 0, 1),
        ]));
        assert_eq!(shared.steps[0].observed, Some(15));
        assert_eq!(shared.steps[1].observed, None);
        assert_eq!(shared.total.observed, None);
        let gap = Overview::of(&results(vec![
            observed(sent(instance("s", "create", "succeeded", 15, 15)), 15, 0),
            sent(instance("s", "create", "succeeded", 15, 15)),
        ]));
        assert_eq!(gap.steps[0].observed, None);
    }
}
