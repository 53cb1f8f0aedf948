//! Helpers for the step executor tests: a fast sandbox, an executor for it,
//! hand-built jobs, driving a job to its end, and checking outputs against
//! an action's declared shape.
#![allow(
    dead_code,
    reason = "each test crate that includes this module uses only some of its helpers"
)]
#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};
use sonicflow::action::Action;
use sonicflow::api::{ApiKey, Client, ClientConfig};
use sonicflow::engine::{
    InstanceId, Job, Outputs, PollOutcome, StepError, StepExecutor, Submission,
};
use sonicflow::plan::models::Models;
use sonicflow::plan::shape::Ty;
use sonicflow::sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use sonicflow::steps::{ApiExecutor, DownloadOptions};

pub const KEY: &str = "steps-test-key-0123456789";

/// Durations divided by 1000, no submit spacing, a large balance.
pub fn fast() -> SandboxConfig {
    SandboxConfig::default()
        .with_time_scale(1000.0)
        .with_submit_interval(Duration::ZERO)
        .with_balance(100_000)
}

pub fn client(base_url: &str, key: &str) -> Client {
    Client::new(&ClientConfig::new(base_url, ApiKey::new(key).unwrap()).unwrap()).unwrap()
}

pub fn models() -> Models {
    Models::with_declared(&Default::default())
}

pub fn executor(base_url: &str, key: &str, downloads: DownloadOptions) -> ApiExecutor {
    ApiExecutor::new(client(base_url, key), models(), downloads).unwrap()
}

pub async fn start(
    config: SandboxConfig,
    downloads: DownloadOptions,
) -> (SandboxHandle, ApiExecutor) {
    let handle = Sandbox::start(config).await.unwrap();
    let exec = executor(handle.base_url(), KEY, downloads);
    (handle, exec)
}

/// A job for step `step_id` (no matrix, no fan-out).
pub fn job(step_id: &str, action: Action, operation: &'static str, fields: Value) -> Job {
    job_at(step_id, None, vec![], action, operation, fields)
}

pub fn job_at(
    step_id: &str,
    row_key: Option<&str>,
    path: Vec<usize>,
    action: Action,
    operation: &'static str,
    fields: Value,
) -> Job {
    let fields: Map<String, Value> = match fields {
        Value::Object(m) => m,
        other => panic!("fields must be an object: {other}"),
    };
    Job {
        id: InstanceId {
            row: 0,
            row_key: row_key.map(str::to_owned),
            step: 0,
            step_id: step_id.to_owned(),
            path,
            names: Vec::new(),
        },
        action,
        operation,
        fields,
        attempt: 1,
        request_hash: "test".to_owned(),
    }
}

/// Submits and polls every 3 ms until the job ends (at most 10 s).
pub async fn drive(exec: &ApiExecutor, job: &Job) -> Result<PollOutcome, StepError> {
    let task = match exec.submit(job).await? {
        Submission::Done(outputs) => return Ok(PollOutcome::Done(outputs)),
        Submission::Task(task) => task,
    };
    for _ in 0..3000 {
        match exec.poll(job, &task).await? {
            PollOutcome::Pending { .. } => tokio::time::sleep(Duration::from_millis(3)).await,
            done => return Ok(done),
        }
    }
    panic!("`{}` did not finish", job.id);
}

/// Runs a job that must succeed with outputs of its action's shape.
pub async fn run(exec: &ApiExecutor, job: &Job) -> Outputs {
    match drive(exec, job).await {
        Ok(PollOutcome::Done(outputs)) => {
            if let Err(e) = conforms(job.action.outputs(), &outputs.value, "outputs") {
                panic!(
                    "`{}` outputs do not match their shape: {e}\n{:#}",
                    job.id, outputs.value
                );
            }
            outputs
        }
        other => panic!("`{}` did not succeed: {other:?}", job.id),
    }
}

/// Whether `value` has exactly the fields of `ty`, each of its type. Scalar
/// leaves may be `null` (the service left them out); clip ids, objects and
/// lists may not, and lists the service documents as non-empty must not be
/// empty.
pub fn conforms(ty: &Ty, value: &Value, at: &str) -> Result<(), String> {
    match (ty, value) {
        (Ty::Any, _) => Ok(()),
        (Ty::Str | Ty::Num | Ty::Bool, Value::Null) => Ok(()),
        (Ty::Str, Value::String(_)) | (Ty::Num, Value::Number(_)) | (Ty::Bool, Value::Bool(_)) => {
            Ok(())
        }
        (Ty::Clip(_), Value::String(s)) if !s.is_empty() => Ok(()),
        (Ty::List(elem, count), Value::Array(items)) => {
            if items.is_empty() && count.value() > 0 {
                return Err(format!("`{at}` is an empty list"));
            }
            for (i, item) in items.iter().enumerate() {
                conforms(elem, item, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (Ty::Obj(_, fields), Value::Object(obj)) => {
            let want: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
            let mut have: Vec<&str> = obj.keys().map(String::as_str).collect();
            let mut sorted_want = want.clone();
            sorted_want.sort_unstable();
            have.sort_unstable();
            if have != sorted_want {
                return Err(format!(
                    "`{at}` has fields {have:?}, expected {sorted_want:?}"
                ));
            }
            for (name, fty) in fields {
                conforms(fty, &obj[*name], &format!("{at}.{name}"))?;
            }
            Ok(())
        }
        (ty, v) => Err(format!("`{at}` should be {ty}, found `{v}`")),
    }
}

/// Every file below `dir`, relative, with `/`.
pub fn files_below(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
