//! `sonicflow run` against `sonicflow sandbox` in both rate-limit scopes:
//! with the documented one (generation submits only) quick calls are never
//! refused; with one slot shared by every paid call the runner learns it
//! from a 429 on a quick call and says so in its summary. Either way the
//! ledger charges exactly the plan.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

mod common;

use common::{SandboxProcess, sonicflow};
use serde_json::Value;

/// Three rows of a create and an upload, independent of each other, so
/// both classes are sent from the first moment. At time scale 100 the
/// sandbox's slot is 30 ms and the uploads go 10.5 ms apart, so with a
/// shared slot one of them is always refused.
const TWO_CLASSES: &str = "version: 1\nname: classes\ndefaults: { mv: sonic-v5 }\npoll: { initial_delay: 20s, interval: 15s, timeout: 10m }\nmatrix:\n  key: id\n  rows: [{id: a}, {id: b}, {id: c}]\nsteps:\n  song:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: 'a song for ${{ matrix.id }}' }\n  up:\n    action: upload\n    with: { url: 'https://example.com/${{ matrix.id }}.mp3' }\n";

struct Run {
    events: Vec<Value>,
    code: Option<i32>,
    charged: Option<u64>,
    planned: Option<u64>,
}

fn run_against(scope: &str, key: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, TWO_CLASSES).unwrap();
    let file = file.to_str().unwrap();
    let sandbox = SandboxProcess::start(&["--time-scale", "100", "--rate-limit-scope", scope]);
    let out_dir = dir.path().join("out");
    let state = dir.path().join("state");
    let out = sandbox.run(
        key,
        &[
            file,
            "--time-scale",
            "100",
            "--log-format",
            "json",
            "--out",
            out_dir.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
    );
    let plan = sonicflow().args(["plan", "--json", file]).output().unwrap();
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    Run {
        events: String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
        code: out.status.code(),
        charged: sandbox.ledger(key)["charged"].as_u64(),
        planned: plan["total_credits"].as_u64(),
    }
}

impl Run {
    fn summary(&self) -> &Value {
        self.events
            .iter()
            .find(|e| e["event"] == "finished")
            .map_or(&Value::Null, |e| &e["summary"])
    }

    /// Steps whose submits met a 429, in order.
    fn throttled_steps(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["event"] == "retrying" && e["error"]["kind"] == "rate_limited")
            .filter_map(|e| e["id"]["step_id"].as_str().map(str::to_owned))
            .collect()
    }
}

#[test]
fn against_the_documented_scope_quick_calls_are_never_refused() {
    let run = run_against("generation", "k-generation");
    assert_eq!(run.code, Some(0), "{:?}", run.events);
    assert_eq!(run.charged, run.planned);
    assert!(
        !run.throttled_steps().iter().any(|s| s == "up"),
        "{:?}",
        run.throttled_steps()
    );
    assert!(run.summary().get("rate_limit_shared").is_none());
}

#[test]
fn against_a_shared_slot_the_run_learns_it_and_still_charges_its_plan() {
    let run = run_against("shared", "k-shared");
    assert_eq!(run.code, Some(0), "{:?}", run.events);
    assert_eq!(run.charged, run.planned);
    assert!(
        run.throttled_steps().iter().any(|s| s == "up"),
        "{:?}",
        run.throttled_steps()
    );
    assert_eq!(run.summary()["rate_limit_shared"], Value::Bool(true));
}
