//! What a run would do now, without running: every instance whose inputs
//! are known is looked up in the memory (reused, re-attached, in doubt, or
//! sent); instances downstream of something that will be sent are sent too.
//! `plan` reports this, and `run` prices what is left before it starts.

use std::collections::HashSet;

use super::decide::{Decision, decide};
use super::graph::{Graph, Readiness, Standing};
use super::{InstanceId, Job, Memory};
use crate::plan::{Plan, Scope};

/// What will happen to one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Its request will be sent and paid for.
    Send,
    /// It will be sent after `step`, whose outputs it needs, runs.
    After { step: String },
    /// An earlier result is reused (`from` a run, or `None`: this run before a resume).
    Reuse { from: Option<String> },
    /// A task accepted earlier is polled again.
    Attach { from: Option<String> },
    /// Sent earlier with no answer: not sent again.
    InDoubt { from: Option<String> },
    /// Excluded, with nothing to reuse: skipped.
    Excluded,
    /// A reference has no value, so no request can be built: it fails unpaid.
    Invalid { reason: String },
    /// Left out by the selection.
    Unselected,
    /// Will not run: a dependency will not succeed.
    Blocked { reason: String },
    /// Will not run: its condition, or that of something it needs, is false.
    Unmet { reason: String },
}

impl Fate {
    /// Whether the instance will cost credits in the run.
    pub fn pays(&self) -> bool {
        matches!(self, Fate::Send | Fate::After { .. })
    }
}

/// One instance's forecast.
#[derive(Debug, Clone)]
pub struct Forecast {
    pub id: InstanceId,
    pub unit_credits: u64,
    /// Known when every input is known.
    pub request_hash: Option<String>,
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
    pub fate: Fate,
}

/// Everything known about a run before it starts.
#[derive(Debug, Clone, Default)]
pub struct Outlook {
    pub instances: Vec<Forecast>,
    /// Credits each plan step is expected to spend, summed over matrix rows.
    pub to_spend: Vec<u64>,
    /// Calls each (matrix row, step) makes, row-major, where every fan-out
    /// it runs under is known now; `None` where only the plan's estimate is.
    pub calls: Vec<Option<u64>>,
}

impl Outlook {
    pub fn total_to_spend(&self) -> u64 {
        self.to_spend.iter().sum()
    }
}

/// What the forecast has found so far, per instance.
#[derive(Default)]
struct Found {
    fates: Vec<Option<Fate>>,
    requests: Vec<Option<Job>>,
}

/// Walks the plan against `memory` as far as known outputs allow, in the
/// driver's order (rows in order, each until nothing in it changes), so
/// that where two instances could take the same earlier result, the one
/// the run gives it to is the one the forecast does.
pub fn forecast(plan: &Plan, memory: &dyn Memory) -> Outlook {
    let (mut graph, created) = Graph::new(plan);
    let mut found = Found::default();
    let mut waiting: Vec<Vec<usize>> = vec![Vec::new(); plan.instances.len()];
    for idx in created {
        waiting[graph.id(idx).row].push(idx);
    }
    loop {
        let mut progressed = false;
        for (row, row_waiting) in waiting.iter_mut().enumerate() {
            while settle_row(plan, memory, &mut graph, row, row_waiting, &mut found) {
                progressed = true;
            }
        }
        if progressed {
            continue;
        }
        // A reuse-only instance waiting on outputs that will be paid for
        // anew cannot match any earlier result: it will be skipped, and
        // what needs it blocked.
        let all: Vec<usize> = waiting.iter().flatten().copied().collect();
        let doomed = fresh_inputs(&graph, &found.fates, &all);
        // So is a reuse-only fan-out whose list will be paid for anew.
        let fresh = will_be_paid(&graph, &found.fates, &all);
        let placeholders = graph.abandon_fresh_reuse_only("excluded", |i| fresh[i]);
        if doomed.is_empty() && placeholders.is_empty() {
            break;
        }
        found.fates.resize(graph.len(), None);
        found.requests.resize(graph.len(), None);
        for idx in placeholders {
            found.fates[idx] = Some(if graph.step(idx).scope.may_submit() {
                Fate::Blocked {
                    reason: "a list it needs is only reused in this run, and will be new"
                        .to_owned(),
                }
            } else {
                Fate::Excluded
            });
        }
        for &idx in &doomed {
            graph.skip(idx, "excluded");
            found.fates[idx] = Some(Fate::Excluded);
        }
        let doomed: HashSet<usize> = doomed.into_iter().collect();
        for row_waiting in &mut waiting {
            row_waiting.retain(|idx| !doomed.contains(idx));
        }
    }
    // What is still waiting needs the outputs of something that will be sent.
    for idx in waiting.into_iter().flatten() {
        found.fates[idx] = Some(Fate::After {
            step: blocker(plan, &graph, idx),
        });
    }
    outlook(plan, &graph, found)
}

/// Looks at `row`'s waiting instances once, as the driver's settle does;
/// returns whether any of them was decided.
fn settle_row(
    plan: &Plan,
    memory: &dyn Memory,
    graph: &mut Graph<'_>,
    row: usize,
    waiting: &mut Vec<usize>,
    found: &mut Found,
) -> bool {
    waiting.extend(graph.expand(row));
    found.fates.resize(graph.len(), None);
    found.requests.resize(graph.len(), None);
    let mut progressed = false;
    for idx in std::mem::take(waiting) {
        match graph.standing(idx) {
            Standing::Skipped(reason) => {
                found.fates[idx] = Some(Fate::Blocked {
                    reason: reason.clone(),
                });
                continue;
            }
            Standing::Unmet(reason) => {
                found.fates[idx] = Some(Fate::Unmet {
                    reason: reason.clone(),
                });
                continue;
            }
            _ => {}
        }
        if graph.step(idx).scope == Scope::Out {
            graph.skip(idx, "not selected");
            found.fates[idx] = Some(Fate::Unselected);
            progressed = true;
            continue;
        }
        match graph.readiness(idx) {
            Readiness::Wait => {
                waiting.push(idx);
                continue;
            }
            Readiness::Blocked(reason) => {
                progressed = true;
                graph.skip(idx, reason.clone());
                found.fates[idx] = Some(Fate::Blocked { reason });
                continue;
            }
            Readiness::Unmet(reason) => {
                progressed = true;
                graph.unmet(idx, reason.clone());
                found.fates[idx] = Some(Fate::Unmet { reason });
                continue;
            }
            Readiness::Ready => progressed = true,
        }
        let decision = decide(plan, graph, idx, memory);
        let (fate, job) = foresee(graph, idx, decision);
        found.fates[idx] = Some(fate);
        found.requests[idx] = job;
    }
    progressed
}

/// What the run will do with a ready instance, as the driver carries out
/// the same decision; the graph learns what its dependents will see.
fn foresee(graph: &mut Graph<'_>, idx: usize, decision: Decision) -> (Fate, Option<Job>) {
    match decision {
        Decision::Unresolved(reason) => {
            graph.fail(idx);
            (Fate::Invalid { reason }, None)
        }
        Decision::Unmet(reason) => {
            graph.unmet(idx, reason.clone());
            (Fate::Unmet { reason }, None)
        }
        Decision::Send(job) => (Fate::Send, Some(job)),
        Decision::Excluded(job) => {
            graph.skip(idx, "excluded");
            (Fate::Excluded, Some(job))
        }
        Decision::Reuse { job, taken } => {
            graph.succeed(idx, taken.outputs.value);
            (Fate::Reuse { from: taken.from }, Some(job))
        }
        Decision::Attach { job, from, .. } => (Fate::Attach { from }, Some(job)),
        Decision::InDoubt { job, from, .. } => {
            graph.fail(idx);
            (Fate::InDoubt { from }, Some(job))
        }
    }
}

/// The step whose outputs a waiting instance needs and that will run first.
fn blocker(plan: &Plan, graph: &Graph<'_>, idx: usize) -> String {
    let row = graph.id(idx).row;
    let step = graph.step(idx);
    step.deps
        .iter()
        .copied()
        .find(|&d| !graph.all_succeeded(row, d))
        .or_else(|| step.deps.first().copied())
        .map(|d| plan.steps[d].id.clone())
        .unwrap_or_default()
}

/// The forecasts in instance order, and credits to spend per step: what
/// the known instances will pay, and for fan-outs whose lists are not known
/// yet, the step's estimate for the rest.
fn outlook(plan: &Plan, graph: &Graph<'_>, found: Found) -> Outlook {
    let Found { fates, requests } = found;
    let pending = graph.pending_steps();
    let mut known_paid = vec![0u64; plan.steps.len()];
    let mut known_free = vec![0u64; plan.steps.len()];
    let mut instances = Vec::with_capacity(graph.len());
    for ((id, _), (fate, job)) in graph.instances().zip(fates.into_iter().zip(requests)) {
        let step = &plan.steps[id.step];
        let fate = fate.unwrap_or(Fate::Send);
        if fate.pays() {
            known_paid[id.step] += 1;
        } else {
            known_free[id.step] += 1;
        }
        let (request_hash, fields) = match job {
            Some(job) => (Some(job.request_hash), Some(job.fields)),
            None => (None, None),
        };
        instances.push(Forecast {
            id: id.clone(),
            unit_credits: step.unit_credits,
            request_hash,
            fields,
            fate,
        });
    }
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    let to_spend = plan
        .steps
        .iter()
        .enumerate()
        .map(|(s, step)| {
            if !step.scope.may_submit() {
                return 0;
            }
            let all_known = !step.axis.iter().any(|a| pending.contains(a));
            let calls = if all_known {
                known_paid[s]
            } else {
                known_paid[s].max(step.max_calls().saturating_sub(known_free[s]))
            };
            calls * step.unit_credits
        })
        .collect();
    Outlook {
        instances,
        to_spend,
        calls: graph.calls_known(),
    }
}

/// For every instance: whether its outputs will be new, because it will be
/// sent (its fate is `Send`, or it is still `waiting` and may be sent).
fn will_be_paid(graph: &Graph<'_>, fates: &[Option<Fate>], waiting: &[usize]) -> Vec<bool> {
    let mut fresh: Vec<bool> = (0..graph.len())
        .map(|i| matches!(fates.get(i), Some(Some(Fate::Send))))
        .collect();
    for &i in waiting {
        fresh[i] |= graph.step(i).scope.may_submit();
    }
    fresh
}

/// The reuse-only instances among `waiting` that read an output that will
/// be new: their requests will be new too.
fn fresh_inputs(graph: &Graph<'_>, fates: &[Option<Fate>], waiting: &[usize]) -> Vec<usize> {
    let fresh = will_be_paid(graph, fates, waiting);
    waiting
        .iter()
        .copied()
        .filter(|&idx| {
            !graph.step(idx).scope.may_submit()
                && graph.inputs_of(idx).into_iter().any(|i| fresh[i])
        })
        .collect()
}
