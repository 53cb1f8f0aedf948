//! `--log-format json`: one JSON object per event, the event's own serde
//! form with a `ts` first, so log pipelines can parse every line alone.

use std::path::Path;
use std::time::SystemTime;

use crate::engine::RunEvent;
use crate::report::results::Results;
use crate::timestamp::rfc3339;

/// The JSON line (without newline) for `event` at `now`.
pub(crate) fn json_line(event: &RunEvent, now: SystemTime) -> String {
    let mut object = serde_json::Map::new();
    object.insert("ts".to_owned(), rfc3339(now).into());
    match serde_json::to_value(event) {
        Ok(serde_json::Value::Object(fields)) => object.extend(fields),
        // Events are plain data; should one ever fail to serialize, say so
        // in the stream rather than drop it silently.
        Ok(other) => {
            object.insert("event".to_owned(), other);
        }
        Err(e) => {
            object.insert("event".to_owned(), "unserializable".into());
            object.insert("error".to_owned(), e.to_string().into());
        }
    }
    serde_json::Value::Object(object).to_string()
}

/// A warning or note about the run as a whole (a price the service charged
/// differently, a balance change nobody explains).
pub(crate) fn note_line(note: &str, now: SystemTime) -> String {
    serde_json::json!({ "ts": rfc3339(now), "event": "note", "message": note }).to_string()
}

/// The last line of a JSON log: where the results file is, the run's
/// status and its totals.
pub(crate) fn results_line(results: &Results, path: &Path, now: SystemTime) -> String {
    let mut line = serde_json::Map::new();
    line.insert("ts".to_owned(), rfc3339(now).into());
    line.insert("event".to_owned(), "results".into());
    if let serde_json::Value::Object(summary) = run_summary(results, path) {
        line.extend(summary);
    }
    serde_json::Value::Object(line).to_string()
}

/// How a run ended, for machines: where the results file is, the run's
/// status, why it stopped and its totals. `run --json` prints it on stdout;
/// the JSON log's last line carries the same fields.
pub fn run_summary(results: &Results, path: &Path) -> serde_json::Value {
    serde_json::json!({
        "path": path.display().to_string(),
        "status": results.status,
        "stop_reason": results.stop_reason,
        "totals": results.totals,
    })
}
