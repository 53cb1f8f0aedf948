//! The plan's per-model rules, run again on resolved values.
//!
//! A field written as an expression is only known once the steps it refers
//! to have finished, so the plan could not check it. The same rules run here
//! before anything is sent: a violation costs nothing.

use indexmap::IndexMap;

use crate::action::Action;
use crate::engine::{ErrorKind, Job, StepError};
use crate::plan::models::Models;
use crate::plan::rules::{self, Val};
use crate::plan::shape::Origin;

/// Where the source clip came from, as far as the resolved operation tells.
fn origin(job: &Job) -> Origin {
    match job.action {
        _ if job.operation.ends_with("_upload_music") => Origin::Upload,
        Action::Extend | Action::Cover => Origin::Generated,
        // The plan already checked provenance where it could; the operation
        // of the other actions does not say where their clip came from.
        _ => Origin::Unknown,
    }
}

/// Fails with `Invalid` when a resolved field breaks a rule.
pub(crate) fn check(job: &Job, models: &Models) -> Result<(), StepError> {
    let values: IndexMap<String, Val> = job
        .fields
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), Val::Known(v.clone())))
        .collect();
    let violations = rules::check(job.action, &values, models, origin(job));
    if violations.is_empty() {
        return Ok(());
    }
    let message = violations
        .iter()
        .map(|v| match &v.field {
            Some(field) if !v.message.contains(&format!("`{field}`")) => {
                format!("field `{field}`: {}", v.message)
            }
            _ => v.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ");
    Err(StepError::new(
        ErrorKind::Invalid,
        format!("step `{}`: {message}; nothing was sent", job.id),
    ))
}
