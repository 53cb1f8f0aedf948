//! `--log-format json`: one JSON object per event, the event's own serde
//! form with a `ts` first, so log pipelines can parse every line alone.

use std::path::Path;
use std::time::SystemTime;

use crate::engine::RunEvent;
use crate::report::results::Results;
use crate::timestamp::rfc3339;

/// The JSON line (without newline) for `event` at `now`.
pub(crate) fn json_line(event: &RunEvent, now: SystemTime) -> String {
    // The event's own object with `ts` spliced in first, written once: no
    // tree of values is built for a line that is printed and dropped.
    if let Ok(fields) = serde_json::to_string(event)
        && let Some(rest) = fields.strip_prefix('{')
        && !rest.starts_with('}')
        && !rest.starts_with("\"ts\":")
    {
        let mut line = String::with_capacity(fields.len() + 40);
        line.push_str("{\"ts\":");
        line.push_str(&serde_json::Value::from(rfc3339(now)).to_string());
        line.push(',');
        line.push_str(rest);
        return line;
    }
    line_of_value(event, now)
}

/// [`json_line`] through a tree of values: what the spliced line must equal.
fn line_of_value(event: &RunEvent, now: SystemTime) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ErrorKind, InstanceId, Outputs, StepError, Summary};

    /// The line written in one go is the line built through values, byte
    /// for byte, for events of every shape.
    #[test]
    fn a_spliced_line_is_the_line_built_through_values() {
        let id = InstanceId {
            row: 3,
            step: 1,
            step_id: "song".to_owned(),
            row_key: Some("r\"3".to_owned()),
            path: vec![0, 2],
            names: vec!["first".to_owned(), "third".to_owned()],
        };
        let outputs = Outputs {
            value: serde_json::json!({"clips": [{"clip_id": "c1", "duration": 104.88}], "n": 1}),
            files: Vec::new(),
        };
        let events = [
            RunEvent::Ready { id: id.clone() },
            RunEvent::Succeeded {
                id: id.clone(),
                outputs,
            },
            RunEvent::Failed {
                id: id.clone(),
                attempt: 2,
                error: StepError::new(ErrorKind::Timeout, "late \u{1b} and \"quoted\""),
                refunded: 5,
                charged: 0,
            },
            RunEvent::Throttled { delay_ms: 150 },
            RunEvent::Finished {
                summary: Summary::default(),
            },
        ];
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_765_000_000_123);
        for event in &events {
            let line = json_line(event, now);
            assert_eq!(line, line_of_value(event, now));
            assert!(line.starts_with("{\"ts\":\"2025-"), "{line}");
        }
    }
}
