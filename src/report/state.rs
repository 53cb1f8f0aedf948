//! Folds the event stream into `Results`: one record per step instance,
//! keyed by `InstanceId` so the file's order is (row, step position, path)
//! whatever order the engine finished things in.
//!
//! Knows events and the plan; never files, HTTP or YAML.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::action::Action;
use crate::engine::observe::{Window, attribute};
use crate::engine::{EarlierAttempt, ErrorKind, InstanceId, Outputs, RunEvent, StepError, Summary};
use crate::plan::Plan;

use super::clock::millis_between;
use super::results::{
    Attempt, Credits, ErrorRecord, FileRecord, MatrixInfo, MatrixRow, ObservedCharges,
    ObservedCredits, PriceTableRef, Results, RunStatus, Service, StepResult, StepStatus, Tool,
    Totals,
};
use crate::timestamp::rfc3339;

/// What the run looks like so far.
#[derive(Debug, Clone)]
pub(crate) struct RunState {
    head: Results,
    instances: BTreeMap<InstanceId, Record>,
    /// Action and operation of each plan step, for instances the engine
    /// reports without a `Created` (e.g. skipped before they existed).
    step_kinds: Vec<(Action, &'static str)>,
    /// The balance windows seen so far (none when charges are not observed).
    windows: Vec<Window>,
    /// When the run began, and the latest moment the results speak for
    /// (the last event, or the end): `wall_ms` is the time between.
    began: SystemTime,
    latest: SystemTime,
}

/// What the run command knows of a run beyond its plan: which service it
/// talks to and where its matrix came from. Given once, before the first event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunContext {
    /// The API the run talks to (see [`Service::of`]).
    pub service: Option<Service>,
    /// The matrix file as given, when the rows came from one.
    pub matrix_file: Option<String>,
    /// Hex SHA-256 of that file's bytes.
    pub matrix_sha256: Option<String>,
    /// `--run-id`.
    pub run_id: Option<String>,
    /// `--shard K/N`, with the keys of the whole matrix.
    pub shard: Option<super::results::ShardInfo>,
}

impl Service {
    /// The service at `base_url`, with any user name, password, query or
    /// fragment taken off: only where the API lives is recorded.
    pub fn of(base_url: &str, sandbox: bool) -> Service {
        let parsed = reqwest::Url::parse(base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"));
        let base_url = match parsed {
            Some(mut url) => {
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.set_query(None);
                url.set_fragment(None);
                url.to_string().trim_end_matches('/').to_owned()
            }
            // Not a web URL: keep nothing that could hide a secret before `@` or after `?`.
            None => base_url
                .rsplit('@')
                .next()
                .unwrap_or_default()
                .split(['?', '#'])
                .next()
                .unwrap_or_default()
                .to_owned(),
        };
        Service { base_url, sandbox }
    }
}

#[derive(Debug, Clone)]
struct Record {
    result: StepResult,
    started: Option<SystemTime>,
}

impl RunState {
    pub(crate) fn new(plan: &Plan, manifest_sha256: &str, now: SystemTime) -> RunState {
        let head = Results {
            schema_version: super::results::SCHEMA_VERSION,
            tool: Tool {
                name: env!("CARGO_PKG_NAME").to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            pipeline: super::results::Pipeline {
                name: plan.name.clone(),
                file: plan.file.clone(),
                sha256: manifest_sha256.to_owned(),
            },
            price_table: PriceTableRef {
                name: plan.prices.name.clone(),
                date: plan.prices.date.clone(),
                source: plan.prices.source.clone(),
                version: plan.prices.version(),
            },
            started_at: rfc3339(now),
            finished_at: None,
            status: RunStatus::Running,
            stop_reason: None,
            totals: Totals {
                credits_estimated: plan.total_credits(),
                ..Totals::default()
            },
            observed_charges: None,
            service: None,
            run_id: None,
            shard: None,
            inputs: plan.inputs.clone(),
            matrix: matrix_of(plan),
            wall_ms: Some(0),
            steps: Vec::new(),
        };
        let step_kinds = plan.steps.iter().map(|s| (s.action, s.operation)).collect();
        RunState {
            head,
            instances: BTreeMap::new(),
            step_kinds,
            windows: Vec::new(),
            began: now,
            latest: now,
        }
    }

    /// Takes what the run command knows beyond the plan.
    pub(crate) fn set_context(&mut self, context: RunContext) {
        self.head.service = context.service;
        self.head.run_id = context.run_id;
        self.head.shard = context.shard;
        if let Some(matrix) = &mut self.head.matrix {
            matrix.file = context.matrix_file;
            matrix.sha256 = context.matrix_sha256;
        }
    }

    /// Moves the results' notion of "now" (for `wall_ms`) to `now`, unless
    /// the run is over.
    pub(crate) fn touch(&mut self, now: SystemTime) {
        if !self.is_finished() {
            self.latest = self.latest.max(now);
        }
    }

    /// Applies one event stamped with `now`.
    pub(crate) fn apply(&mut self, event: &RunEvent, now: SystemTime) {
        self.touch(now);
        let at = rfc3339(now);
        match event {
            RunEvent::Ready { id } => {
                self.record(id).result.queued_at.get_or_insert(at);
            }
            RunEvent::Created {
                id,
                action,
                operation,
                planned_credits,
            } => {
                let record = self.record(id);
                record.result.action = *action;
                (*operation).clone_into(&mut record.result.operation);
                record.result.credits.planned = *planned_credits;
            }
            RunEvent::Submitting {
                id,
                attempt,
                request_hash,
                fields,
            } => {
                self.submitting(id, *attempt, request_hash, now, at);
                self.record(id).result.request = Some(fields.clone());
            }
            RunEvent::Submitted {
                id,
                attempt,
                task_id,
                credits,
            } => self.submitted(id, *attempt, task_id.as_deref(), *credits, at),
            RunEvent::Retrying {
                id,
                attempt,
                error,
                refunded,
                ..
            } => {
                let r = &mut self.record(id).result;
                r.credits.refunded += refunded;
                close_attempt(r, *attempt, error, at);
            }
            RunEvent::Succeeded { id, outputs } => self.succeeded(id, outputs, now),
            RunEvent::Reused {
                id,
                request_hash,
                from,
                credits,
                outputs,
            } => {
                let r = &mut self.record(id).result;
                r.request_hash = Some(request_hash.clone());
                r.reused_from.clone_from(from);
                r.credits.charged += credits;
                self.succeeded(id, outputs, now);
            }
            RunEvent::Attached {
                id,
                request_hash,
                task_id,
                credits,
                from,
            } => {
                let record = self.record(id);
                record.started.get_or_insert(now);
                let r = &mut record.result;
                r.status = StepStatus::Running;
                r.started_at.get_or_insert_with(|| at.clone());
                r.request_hash = Some(request_hash.clone());
                r.task_id = Some(task_id.clone());
                r.credits.charged += credits;
                r.attached_from.clone_from(from);
            }
            RunEvent::Failed {
                id,
                attempt,
                error,
                refunded,
                charged,
            } => self.failed(id, *attempt, error, (*charged, *refunded), now),
            RunEvent::Credits { credits } => self.head.totals.set_credits(credits),
            RunEvent::Observed { window } => self.windows.push(window.clone()),
            RunEvent::Skipped { id, reason } => {
                let record = self.record(id);
                record.result.skip_reason = Some(reason.clone());
                record.finish(StepStatus::Skipped, now);
            }
            RunEvent::Unmet { id, reason } => {
                let record = self.record(id);
                record.result.skip_reason = Some(reason.clone());
                record.result.credits.planned = 0;
                record.finish(StepStatus::SkippedCondition, now);
            }
            RunEvent::Recalled { id, attempts } => self.recalled(id, attempts),
            RunEvent::Throttled { .. } => {}
            RunEvent::Stopping { reason } => {
                self.head.status = RunStatus::Stopped;
                self.head.stop_reason = Some(reason.to_string());
            }
            RunEvent::Finished { summary } => self.finished(summary, at),
        }
    }

    fn submitting(
        &mut self,
        id: &InstanceId,
        attempt: u32,
        request_hash: &str,
        now: SystemTime,
        at: String,
    ) {
        let record = self.record(id);
        record.started.get_or_insert(now);
        let r = &mut record.result;
        r.status = StepStatus::Running;
        r.started_at.get_or_insert_with(|| at.clone());
        request_hash.clone_into(r.request_hash.get_or_insert_with(String::new));
        r.attempts.push(Attempt {
            attempt,
            task_id: None,
            error: None,
            started_at: at,
            accepted_at: None,
            finished_at: None,
        });
    }

    /// The attempts the journal holds of an instance go first, as sent.
    fn recalled(&mut self, id: &InstanceId, earlier: &[EarlierAttempt]) {
        let r = &mut self.record(id).result;
        if let Some(first) = earlier.first() {
            r.started_at.get_or_insert_with(|| first.sent_at.clone());
        }
        let before = earlier.iter().map(|a| Attempt {
            attempt: a.attempt,
            task_id: a.task_id.clone(),
            error: a.error.as_ref().map(error_record),
            started_at: a.sent_at.clone(),
            accepted_at: a.accepted_at.clone(),
            finished_at: a.finished_at.clone(),
        });
        let now = std::mem::take(&mut r.attempts);
        r.attempts = before.chain(now).collect();
    }

    fn submitted(
        &mut self,
        id: &InstanceId,
        attempt: u32,
        task_id: Option<&str>,
        credits: u64,
        at: String,
    ) {
        let r = &mut self.record(id).result;
        r.task_id = task_id.map(str::to_owned);
        r.credits.charged += credits;
        if let Some(a) = attempt_mut(r, attempt) {
            a.task_id = task_id.map(str::to_owned);
            a.accepted_at = Some(at);
        }
    }

    fn succeeded(&mut self, id: &InstanceId, outputs: &Outputs, now: SystemTime) {
        let at = rfc3339(now);
        let record = self.record(id);
        let r = &mut record.result;
        r.outputs = outputs.value.clone();
        let (row, step, instance) = (&r.row_key, &r.step, &r.instance);
        r.files = outputs
            .files
            .iter()
            .map(|f| FileRecord {
                path: f.path.clone(),
                sha256: f.sha256.clone(),
                bytes: f.bytes,
                url: f.url.clone(),
                row: row.clone(),
                step: step.clone(),
                instance: instance.clone(),
                clip_id: f.clip_id.clone(),
                kind: f.kind,
                stem: f.stem.clone(),
                title: f.title.clone(),
            })
            .collect();
        if let Some(a) = r.attempts.last_mut() {
            a.finished_at.get_or_insert(at);
        }
        record.finish(StepStatus::Succeeded, now);
    }

    /// `credits`: (charged, refunded) by the attempt that failed.
    fn failed(
        &mut self,
        id: &InstanceId,
        attempt: u32,
        error: &StepError,
        (charged, refunded): (u64, u64),
        now: SystemTime,
    ) {
        let record = self.record(id);
        let r = &mut record.result;
        r.credits.charged += charged;
        if error.kind == ErrorKind::InDoubt {
            r.credits.in_doubt += charged;
        }
        r.credits.refunded += refunded;
        r.error = Some(error_record(error));
        close_attempt(r, attempt, error, rfc3339(now));
        record.finish(StepStatus::Failed, now);
    }

    fn finished(&mut self, summary: &Summary, at: String) {
        self.head.finished_at = Some(at);
        self.head.wall_ms = Some(millis_between(self.began, self.latest));
        let outcome = summary.outcome();
        self.head.status = RunStatus::of(&outcome);
        if let Some(reason) = outcome.stop_reason() {
            self.head.stop_reason = Some(reason.to_string());
        }
    }

    /// The record of `id`, created on first mention.
    fn record(&mut self, id: &InstanceId) -> &mut Record {
        let kinds = &self.step_kinds;
        self.instances.entry(id.clone()).or_insert_with(|| {
            let (action, operation) = kinds.get(id.step).copied().unwrap_or((Action::Create, ""));
            Record::new(id, action, operation)
        })
    }

    /// Whether the run has finished.
    pub(crate) fn is_finished(&self) -> bool {
        self.head.finished_at.is_some()
    }

    /// The results so far, with totals recounted and steps in order.
    pub(crate) fn snapshot(&self) -> Results {
        let mut results = self.framed();
        results.steps = self.instances.values().map(|r| r.result.clone()).collect();
        self.observe(&mut results);
        results
    }

    /// Lends the results as they stand to `f`, as [`RunState::snapshot`]
    /// gives them, without copying any instance: their records are moved
    /// into the results for the call and back after it. A big run's file
    /// is written this way with no second copy of it in memory.
    pub(crate) fn lend<R>(&mut self, f: impl FnOnce(&Results) -> R) -> R {
        let mut results = self.framed();
        let instances = std::mem::take(&mut self.instances);
        let mut keys = Vec::with_capacity(instances.len());
        let mut started = Vec::with_capacity(instances.len());
        results.steps.reserve(instances.len());
        for (key, record) in instances {
            keys.push(key);
            started.push(record.started);
            results.steps.push(record.result);
        }
        let kept: Vec<Option<ObservedCredits>> = results
            .steps
            .iter()
            .map(|s| s.credits.observed.clone())
            .collect();
        self.observe(&mut results);
        let lent = f(&results);
        self.instances = keys
            .into_iter()
            .zip(started)
            .zip(results.steps.into_iter().zip(kept))
            .map(|((key, started), (mut result, observed))| {
                result.credits.observed = observed;
                (key, Record { result, started })
            })
            .collect();
        lent
    }

    /// The results without their instances.
    fn framed(&self) -> Results {
        let mut results = self.head.clone();
        if !self.is_finished() {
            results.wall_ms = Some(millis_between(self.began, self.latest));
        }
        results.totals = self.totals();
        results
    }

    /// The observed charges, on the run and on each of `results`' steps.
    fn observe(&self, results: &mut Results) {
        if !self.windows.is_empty() {
            let obs = attribute(&self.windows);
            for step in &mut results.steps {
                if let Some((charged, refunded, unobserved_attempts)) = obs.instance(&step.name()) {
                    step.credits.observed = Some(ObservedCredits {
                        charged,
                        refunded,
                        unobserved_attempts,
                    });
                }
            }
            results.observed_charges = Some(ObservedCharges::of(&obs));
        }
    }

    fn totals(&self) -> Totals {
        // The run's credits are the engine's account, not a sum of the
        // instances: a resumed run also spent on requests it no longer has.
        let head = &self.head.totals;
        let mut t = Totals {
            credits_estimated: head.credits_estimated,
            credits_charged: head.credits_charged,
            credits_refunded: head.credits_refunded,
            credits_in_doubt: head.credits_in_doubt,
            credits_net: head.credits_net,
            ..Totals::default()
        };
        for record in self.instances.values() {
            let r = &record.result;
            t.instances += 1;
            match r.status {
                StepStatus::Waiting => t.waiting += 1,
                StepStatus::Running => t.running += 1,
                StepStatus::Succeeded => t.succeeded += 1,
                StepStatus::Failed => t.failed += 1,
                StepStatus::Skipped => t.skipped += 1,
                StepStatus::SkippedCondition => t.skipped_condition += 1,
            }
            t.credits_planned += r.credits.planned;
        }
        t
    }
}

impl Record {
    fn new(id: &InstanceId, action: Action, operation: &str) -> Record {
        let instance = id.instance();
        Record {
            started: None,
            result: StepResult {
                step: id.step_id.clone(),
                instance: (instance != "-").then_some(instance),
                row_key: id.row_key.clone(),
                path: id.path.clone(),
                action,
                operation: operation.to_owned(),
                status: StepStatus::Waiting,
                request_hash: None,
                task_id: None,
                request: None,
                credits: Credits::default(),
                attempts: Vec::new(),
                outputs: serde_json::Value::Null,
                files: Vec::new(),
                queued_at: None,
                started_at: None,
                finished_at: None,
                duration_ms: None,
                skip_reason: None,
                error: None,
                reused_from: None,
                attached_from: None,
            },
        }
    }

    fn finish(&mut self, status: StepStatus, now: SystemTime) {
        self.result.status = status;
        self.result.finished_at = Some(rfc3339(now));
        self.result.duration_ms = self.started.map(|s| millis_between(s, now));
    }
}

/// The matrix the plan expanded, row by row; `None` without one.
fn matrix_of(plan: &Plan) -> Option<MatrixInfo> {
    if plan.instances.iter().all(|i| i.key.is_none()) {
        return None;
    }
    let rows = plan
        .instances
        .iter()
        .map(|i| MatrixRow {
            key: i.key.clone().unwrap_or_default(),
            values: i.matrix.clone(),
        })
        .collect();
    Some(MatrixInfo {
        file: None,
        sha256: None,
        rows,
    })
}

/// Records how attempt number `attempt` ended.
fn close_attempt(r: &mut StepResult, attempt: u32, error: &StepError, at: String) {
    if let Some(a) = attempt_mut(r, attempt) {
        a.error = Some(error_record(error));
        a.finished_at = Some(at);
    }
}

fn attempt_mut(r: &mut StepResult, attempt: u32) -> Option<&mut Attempt> {
    r.attempts.iter_mut().rev().find(|a| a.attempt == attempt)
}

pub(crate) fn error_record(error: &StepError) -> ErrorRecord {
    let kind = serde_json::to_value(error.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", error.kind));
    ErrorRecord {
        kind,
        message: error.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn plan() -> Plan {
        let text = "version: 1\nname: t\nsteps:\n  up:\n    action: upload\n    with: { url: https://example.com/a.mp3 }\n  wav:\n    action: wav\n    with: { clip: \"${{ steps.up.outputs.clip_id }}\" }\n";
        crate::plan::from_yaml(text)
    }

    fn id(step: usize, step_id: &str) -> InstanceId {
        InstanceId {
            row: 0,
            row_key: None,
            step,
            step_id: step_id.to_owned(),
            path: vec![],
            names: Vec::new(),
        }
    }

    #[test]
    fn an_instance_skipped_before_it_was_created_takes_its_kind_from_the_plan() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut state = RunState::new(&plan(), "00", t0);
        let skipped = RunEvent::Skipped {
            id: id(1, "wav"),
            reason: "dependency `up` failed".into(),
        };
        state.apply(&skipped, t0 + Duration::from_secs(1));
        let results = state.snapshot();
        let wav = &results.steps[0];
        assert_eq!((wav.action, wav.operation.as_str()), (Action::Wav, "wav"));
        assert_eq!(
            wav.instance, None,
            "a step that runs once has no instance name"
        );
        assert_eq!(wav.status, StepStatus::Skipped);
        assert_eq!(wav.duration_ms, None, "it never started");
    }

    #[test]
    fn a_retry_closes_its_attempt_and_the_next_opens_another() {
        let t0 = SystemTime::UNIX_EPOCH;
        let at = |s| t0 + Duration::from_secs(s);
        let mut state = RunState::new(&plan(), "00", t0);
        let up = id(0, "up");
        let submitting = |attempt| RunEvent::Submitting {
            id: up.clone(),
            attempt,
            request_hash: "sha256:x".into(),
            fields: serde_json::Value::Null,
        };
        state.apply(&submitting(1), at(1));
        let error = StepError::new(ErrorKind::Transient, "502");
        let retrying = RunEvent::Retrying {
            id: up.clone(),
            attempt: 1,
            error,
            delay_ms: 10,
            refunded: 0,
        };
        state.apply(&retrying, at(2));
        state.apply(&submitting(2), at(4));
        let running = state.snapshot();
        assert_eq!(running.totals.running, 1);
        let attempts = &running.steps[0].attempts;
        assert_eq!(attempts.len(), 2);
        assert_eq!(
            attempts[0].error.as_ref().map(|e| e.kind.as_str()),
            Some("transient")
        );
        assert!(attempts[1].finished_at.is_none());
        let done = RunEvent::Succeeded {
            id: up.clone(),
            outputs: Outputs::default(),
        };
        state.apply(&done, at(7));
        let step = &state.snapshot().steps[0];
        assert_eq!(
            step.duration_ms,
            Some(6000),
            "from the first submit to the end"
        );
        assert_eq!(
            step.attempts[1].finished_at.as_deref(),
            Some("1970-01-01T00:00:07.000Z")
        );
    }

    #[test]
    fn an_instance_is_queued_sent_and_accepted_and_the_run_counts_its_wall_time() {
        let t0 = SystemTime::UNIX_EPOCH;
        let at = |s| t0 + Duration::from_secs(s);
        let mut state = RunState::new(&plan(), "00", t0);
        let up = id(0, "up");
        state.apply(&RunEvent::Ready { id: up.clone() }, at(1));
        let fields = serde_json::json!({ "url": "https://example.com/a.mp3" });
        let submitting = RunEvent::Submitting {
            id: up.clone(),
            attempt: 1,
            request_hash: "sha256:x".into(),
            fields: fields.clone(),
        };
        state.apply(&submitting, at(3));
        let running = state.snapshot();
        assert_eq!(
            running.wall_ms,
            Some(3000),
            "to the last event while it runs"
        );
        let submitted = RunEvent::Submitted {
            id: up.clone(),
            attempt: 1,
            task_id: None,
            credits: 2,
        };
        state.apply(&submitted, at(4));
        state.touch(at(6));
        assert_eq!(state.snapshot().wall_ms, Some(6000), "to the last write");
        let step = &state.snapshot().steps[0];
        assert_eq!(step.queued_at.as_deref(), Some("1970-01-01T00:00:01.000Z"));
        assert_eq!(step.request.as_ref(), Some(&fields));
        assert_eq!(
            step.attempts[0].accepted_at.as_deref(),
            Some("1970-01-01T00:00:04.000Z")
        );
        let finished = RunEvent::Finished {
            summary: Summary::default(),
        };
        state.apply(&finished, at(9));
        state.touch(at(20));
        assert_eq!(
            state.snapshot().wall_ms,
            Some(9000),
            "an ended run keeps its wall time"
        );
    }

    #[test]
    fn the_service_is_recorded_without_credentials_or_query() {
        let cases = [
            (
                "https://user:secret@api.example.com/v1?key=abc#x",
                "https://api.example.com/v1",
            ),
            ("http://127.0.0.1:4010/", "http://127.0.0.1:4010"),
            ("not a url?key=abc", "not a url"),
            ("me:secret@host", "host"),
        ];
        for (given, recorded) in cases {
            let service = Service::of(given, false);
            assert_eq!(service.base_url, recorded, "{given}");
        }
        assert!(Service::of("http://127.0.0.1:1", true).sandbox);
    }

    #[test]
    fn the_matrix_and_inputs_come_from_the_plan_and_the_file_from_the_context() {
        let text = "version: 1\nname: t\ninputs: { mood: { default: calm } }\nmatrix:\n  key: id\n  rows: [{ id: a, idea: rain }, { id: b, idea: sun }]\nsteps:\n  up:\n    action: upload\n    with: { url: https://example.com/a.mp3 }\n";
        let mut state = RunState::new(&crate::plan::from_yaml(text), "00", SystemTime::UNIX_EPOCH);
        state.set_context(RunContext {
            service: Some(Service::of("http://127.0.0.1:9", true)),
            matrix_file: Some("rows.csv".into()),
            matrix_sha256: Some("ab".into()),
            ..RunContext::default()
        });
        let results = state.snapshot();
        assert_eq!(results.inputs["mood"], "calm");
        let matrix = results.matrix.expect("a matrix");
        assert_eq!(matrix.file.as_deref(), Some("rows.csv"));
        let keys: Vec<&str> = matrix.rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(matrix.rows[1].values["idea"], "sun");
        assert!(
            RunState::new(&plan(), "00", SystemTime::UNIX_EPOCH)
                .snapshot()
                .matrix
                .is_none()
        );
    }

    /// The results lent without copying are the snapshot's, observed
    /// charges included, and lending leaves the state as it was.
    #[test]
    fn lent_results_are_the_snapshot_and_lending_changes_nothing() {
        let t0 = SystemTime::UNIX_EPOCH;
        let at = |s| t0 + Duration::from_secs(s);
        let mut state = RunState::new(&plan(), "00", t0);
        let (up, wav) = (id(0, "up"), id(1, "wav"));
        for (n, inst) in [&up, &wav].into_iter().enumerate() {
            state.apply(
                &RunEvent::Submitting {
                    id: inst.clone(),
                    attempt: 1,
                    request_hash: format!("sha256:{n}"),
                    fields: serde_json::json!({ "n": n }),
                },
                at(1),
            );
        }
        let window = Window {
            seq: 0,
            before: Some(100),
            after: Some(98),
            submits: vec![crate::engine::observe::WindowSubmit {
                inst: up.to_string(),
                attempt: 1,
                operation: "upload".into(),
                planned: 2,
                since: None,
            }],
            failures: Vec::new(),
            failed_reads: 0,
        };
        state.apply(&RunEvent::Observed { window }, at(2));
        let outputs = Outputs {
            value: serde_json::json!({ "clip_id": "c" }),
            files: Vec::new(),
        };
        state.apply(&RunEvent::Succeeded { id: up, outputs }, at(3));
        let before = state.snapshot();
        assert!(before.steps[0].credits.observed.is_some(), "{before:?}");
        let lent = state.lend(Clone::clone);
        assert_eq!(lent, before);
        assert_eq!(state.snapshot(), before);
        assert!(
            state
                .instances
                .values()
                .all(|r| r.result.credits.observed.is_none())
        );
    }
}
