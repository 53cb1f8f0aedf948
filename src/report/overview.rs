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
