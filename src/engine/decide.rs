//! What happens to an instance whose dependencies are done: its request is
//! built and the memory asked about it. The run acts on the answer and the
//! forecast reports it, so `plan` says what `run` will do because both ask
//! here.

use serde_json::{Map, Value};

use super::graph::Graph;
use super::{EarlierAttempt, InstanceId, Job, Memory, Outputs, Recall, TaskRef};
use crate::plan::Plan;
use crate::plan::condition::{self, Truth};
use crate::plan::hash::request_hash;

/// An earlier result, as a reused instance takes it.
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    pub outputs: Outputs,
    /// The run it comes from; `None`: this run, before it was resumed.
    pub from: Option<String>,
    /// What this run was charged for it (0 for another run's result).
    pub credits: u64,
}

/// The one decision about a ready instance.
#[derive(Debug)]
pub(crate) enum Decision {
    /// A reference has no value, so there is no request to send: it fails, unpaid.
    Unresolved(String),
    /// Its condition is false: skipped (condition), nothing sent.
    Unmet(String),
    /// New: it is sent and paid for.
    Send(Job),
    /// New, but its step may only be reused in this run: it does not run.
    Excluded(Job),
    /// An earlier result is taken; nothing is sent.
    Reuse { job: Job, taken: Taken },
    /// A task accepted earlier is polled, never sent again.
    Attach {
        job: Job,
        task: TaskRef,
        from: Option<String>,
        credits: u64,
    },
    /// Sent earlier and never answered: not sent again.
    InDoubt {
        job: Job,
        from: Option<String>,
        since: String,
        attempt: Option<u32>,
        earlier: Vec<EarlierAttempt>,
    },
}

/// Builds instance `idx`'s request and asks `memory` what is known of it.
pub(crate) fn decide(plan: &Plan, graph: &Graph<'_>, idx: usize, memory: &dyn Memory) -> Decision {
    let step = graph.step(idx);
    match graph.condition(idx) {
        Truth::True => {}
        Truth::False => {
            let condition = step.condition.as_ref();
            return Decision::Unmet(condition.map_or_else(String::new, condition::false_reason));
        }
        Truth::NotBool(found) => {
            return Decision::Unresolved(format!(
                "its condition (`if`) gave {found}, not `true` or `false`"
            ));
        }
        Truth::Unknown => {
            return Decision::Unresolved(
                "its condition (`if`) could not be resolved: a value it reads is missing"
                    .to_owned(),
            );
        }
    }
    let fields = match graph.resolve_fields(idx) {
        Ok(fields) => fields,
        Err(message) => return Decision::Unresolved(message),
    };
    let job = first_request(plan, graph.id(idx).clone(), fields);
    // Which earlier result to take depends on what the instances reading
    // it would then find: see `Memory::recall_preferring`.
    let dependents = |outputs: &Outputs| -> Vec<Job> {
        graph
            .dependents_if(idx, &outputs.value)
            .into_iter()
            .map(|(id, fields)| first_request(plan, id, fields))
            .collect()
    };
    let recall = memory.recall_preferring(&job, &dependents);
    decision_of(job, recall, step.scope.may_submit())
}

/// What to do with `job` given what the memory recalls of it; `may_submit`:
/// whether its step may be paid for in this run.
pub(crate) fn decision_of(job: Job, recall: Recall, may_submit: bool) -> Decision {
    match recall {
        Recall::New if may_submit => Decision::Send(job),
        Recall::New => Decision::Excluded(job),
        Recall::Reuse {
            outputs,
            from,
            credits,
        } => Decision::Reuse {
            job,
            taken: Taken {
                outputs,
                from,
                credits,
            },
        },
        Recall::Attach {
            task,
            from,
            credits,
        } => Decision::Attach {
            job,
            task,
            from,
            credits,
        },
        Recall::InDoubt {
            from,
            since,
            attempt,
            earlier,
        } => Decision::InDoubt {
            job,
            from,
            since,
            attempt,
            earlier,
        },
    }
}

/// Instance `id`'s first request, with `fields` resolved.
fn first_request(plan: &Plan, id: InstanceId, fields: Map<String, Value>) -> Job {
    let step = &plan.steps[id.step];
    Job {
        action: step.action,
        operation: step.operation,
        request_hash: request_hash(step.operation, &fields, &plan.prices.version()),
        id,
        fields,
        attempt: 1,
    }
}
