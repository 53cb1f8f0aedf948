//! What a run would do now, without running: every instance whose inputs
//! are known is looked up in the memory (reused, re-attached, in doubt, or
//! sent); instances downstream of something that will be sent are sent too.
//! `plan` reports this, and `run` prices what is left before it starts.

use super::graph::{Graph, Readiness};
use super::{InstanceId, Job, Memory, Recall, Status};
use crate::plan::hash::request_hash;
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
    /// Left out by the selection.
    Unselected,
    /// Will not run: a dependency will not succeed.
    Blocked { reason: String },
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
}

impl Outlook {
    pub fn total_to_spend(&self) -> u64 {
        self.to_spend.iter().sum()
    }
}

/// Walks the plan against `memory` as far as known outputs allow.
pub fn forecast(plan: &Plan, memory: &dyn Memory) -> Outlook {
    let (mut graph, created) = Graph::new(plan);
    let mut fates: Vec<Option<Fate>> = Vec::new();
    let mut hashes: Vec<Option<(String, serde_json::Map<String, serde_json::Value>)>> = Vec::new();
    let mut waiting: Vec<usize> = created;
    loop {
        let mut progressed = false;
        for row in 0..plan.instances.len() {
            waiting.extend(graph.expand(row));
        }
        fates.resize(graph.insts.len(), None);
        hashes.resize(graph.insts.len(), None);
        for idx in std::mem::take(&mut waiting) {
            let step = graph.step(idx);
            if graph.insts[idx].status == Status::Skipped {
                let reason = graph.insts[idx].skip_reason.clone().unwrap_or_default();
                fates[idx] = Some(Fate::Blocked { reason });
                continue;
            }
            if step.scope == Scope::Out {
                graph.insts[idx].status = Status::Skipped;
                fates[idx] = Some(Fate::Unselected);
                progressed = true;
                continue;
            }
            match graph.readiness(idx) {
                Readiness::Wait => {
                    waiting.push(idx);
                    continue;
                }
                Readiness::Blocked(reason) => {
                    graph.insts[idx].status = Status::Skipped;
                    fates[idx] = Some(Fate::Blocked { reason });
                    progressed = true;
                    continue;
                }
                Readiness::Ready => {}
            }
            progressed = true;
            let Ok(fields) = graph.resolve_fields(idx) else {
                graph.insts[idx].status = Status::Running;
                fates[idx] = Some(Fate::Send);
                continue;
            };
            let job = Job {
                id: graph.insts[idx].id.clone(),
                action: step.action,
                operation: step.operation,
                request_hash: request_hash(step.operation, &fields, &plan.prices.version()),
                fields,
                attempt: 1,
            };
            let fate = match memory.recall(&job) {
                Recall::Reuse { outputs, from, .. } => {
                    graph.insts[idx].status = Status::Succeeded;
                    graph.insts[idx].outputs = Some(outputs.value);
                    Fate::Reuse { from }
                }
                Recall::Attach { from, .. } => {
                    graph.insts[idx].status = Status::Running;
                    Fate::Attach { from }
                }
                Recall::InDoubt { from, .. } => {
                    graph.insts[idx].status = Status::Failed;
                    Fate::InDoubt { from }
                }
                Recall::New if !step.scope.may_submit() => {
                    graph.insts[idx].status = Status::Skipped;
                    Fate::Excluded
                }
                Recall::New => {
                    graph.insts[idx].status = Status::Running;
                    Fate::Send
                }
            };
            hashes[idx] = Some((job.request_hash, job.fields));
            fates[idx] = Some(fate);
        }
        if !progressed {
            // A reuse-only instance waiting on outputs that will be paid for
            // anew cannot match any earlier result: it will be skipped, and
            // what needs it blocked.
            let doomed = fresh_inputs(&graph, &fates, &waiting);
            if doomed.is_empty() {
                break;
            }
            for &idx in &doomed {
                graph.insts[idx].status = Status::Skipped;
                fates[idx] = Some(Fate::Excluded);
            }
            waiting.retain(|idx| !doomed.contains(idx));
        }
    }
    // What is still waiting needs the outputs of something that will be sent.
    for idx in waiting {
        let inst = &graph.insts[idx];
        let step = graph.step(idx);
        let blocker = step
            .deps
            .iter()
            .map(|&d| plan.steps[d].id.clone())
            .find(|d| {
                graph.insts.iter().any(|i| {
                    i.id.row == inst.id.row && &i.id.step_id == d && i.status != Status::Succeeded
                })
            })
            .unwrap_or_else(|| {
                step.deps
                    .first()
                    .map(|&d| plan.steps[d].id.clone())
                    .unwrap_or_default()
            });
        fates[idx] = Some(Fate::After { step: blocker });
    }
    let pending = graph.pending_steps();
    let mut known_paid = vec![0u64; plan.steps.len()];
    let mut known_free = vec![0u64; plan.steps.len()];
    let mut instances = Vec::with_capacity(graph.insts.len());
    for (idx, inst) in graph.insts.iter().enumerate() {
        let step = &plan.steps[inst.id.step];
        let fate = fates[idx].clone().unwrap_or(Fate::Send);
        if fate.pays() {
            known_paid[inst.id.step] += 1;
        } else {
            known_free[inst.id.step] += 1;
        }
        let (request_hash, fields) = match hashes[idx].clone() {
            Some((h, f)) => (Some(h), Some(f)),
            None => (None, None),
        };
        instances.push(Forecast {
            id: inst.id.clone(),
            unit_credits: step.unit_credits,
            request_hash,
            fields,
            fate,
        });
    }
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    let rows = plan.instances.len() as u64;
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
                known_paid[s].max((step.fan_out * rows).saturating_sub(known_free[s]))
            };
            calls * step.unit_credits
        })
        .collect();
    Outlook {
        instances,
        to_spend,
    }
}

/// The reuse-only instances among `waiting` that read an output of an
/// instance that will be sent (its fate is `Send`, or it is waiting itself
/// and may be sent): their requests will be new.
fn fresh_inputs(graph: &Graph<'_>, fates: &[Option<Fate>], waiting: &[usize]) -> Vec<usize> {
    let pending: std::collections::HashSet<usize> = waiting.iter().copied().collect();
    waiting
        .iter()
        .copied()
        .filter(|&idx| {
            !graph.step(idx).scope.may_submit()
                && graph.inputs_of(idx).into_iter().any(|i| {
                    matches!(fates.get(i), Some(Some(Fate::Send)))
                        || (pending.contains(&i) && graph.step(i).scope.may_submit())
                })
        })
        .collect()
}
