//! What the journal's tests build alike: a run's header and a job.

use serde_json::{Map, json};

use super::entry::RunHeader;
use crate::action::Action;
use crate::engine::{InstanceId, Job};

/// The API every test run talks to.
pub(super) const API: &str = "http://127.0.0.1:1";

/// The header of run `id` of pipeline `p`.
pub(super) fn header(id: &str) -> RunHeader {
    serde_json::from_value(json!({
        "id": id, "pipeline": "p", "manifest": "/p.yaml", "manifest_sha256": "0",
        "price_version": "v", "tool_version": "0", "started_at": "2026-11-21T12:00:00.000Z",
        "api": API,
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Step `song`'s request `h`, first attempt.
pub(super) fn job() -> Job {
    Job {
        id: InstanceId {
            row: 0,
            row_key: None,
            step: 0,
            step_id: "song".into(),
            path: Vec::new(),
            names: Vec::new(),
        },
        action: Action::Create,
        operation: "create_music",
        fields: Map::new(),
        attempt: 1,
        request_hash: "h".into(),
    }
}
