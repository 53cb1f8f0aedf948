//! A small matrix plan and a realistic run of it, written out by hand as
//! the engine would report it: two rows, a fan-out, a retry, a throttle, a
//! failure, a skip, a stop and the finish.
#![allow(
    dead_code,
    reason = "each test crate that includes this module uses only some of its helpers"
)]
#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sonicflow::engine::{
    Account, ErrorKind, InstanceId, Outputs, RunEvent, SavedFile, StepError, StopReason, Summary,
};
use sonicflow::plan::{Options, Plan};
use sonicflow::report::{Clock, stepping_clock};

/// The run's credits: 47 accepted, 2 in doubt (the lost wav), 30 refunded.
pub const CREDITS: Account = Account {
    charged: 49,
    refunded: 30,
    in_doubt: 2,
    net: 19,
};

pub const MANIFEST: &str = r#"version: 1
name: demo
matrix:
  key: id
  rows:
    - { id: rain, idea: "rain on a tin roof" }
    - { id: sun, idea: "sunrise over the sea" }
defaults:
  mv: sonic-v5
steps:
  song:
    action: create
    with:
      custom_mode: false
      gpt_description_prompt: ${{ matrix.idea }}
  wav:
    action: wav
    for_each: ${{ steps.song.outputs.clips }}
    with: { clip: "${{ item.clip_id }}" }
"#;

/// 2026-11-27T12:00:00Z.
pub fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_780_800)
}

/// A clock one second further on every read.
pub fn clock() -> Clock {
    stepping_clock(start(), Duration::from_secs(1))
}

/// A clock that never moves.
pub fn frozen_clock() -> Clock {
    stepping_clock(start(), Duration::ZERO)
}

pub fn plan() -> Plan {
    let loaded = sonicflow::manifest::load::load_str(
        "pipelines/demo.yaml",
        MANIFEST.to_owned(),
        std::path::Path::new("pipelines"),
    )
    .unwrap();
    let options = Options {
        require_inputs: true,
        ..Default::default()
    };
    sonicflow::plan::build(&loaded, &options).unwrap()
}

pub fn id(row: usize, key: &str, step: usize, step_id: &str, path: &[usize]) -> InstanceId {
    InstanceId {
        row,
        row_key: Some(key.to_owned()),
        step,
        step_id: step_id.to_owned(),
        path: path.to_vec(),
        names: Vec::new(),
    }
}

fn submitting(id: &InstanceId, attempt: u32) -> RunEvent {
    RunEvent::Submitting {
        id: id.clone(),
        attempt,
        request_hash: format!("sha256:{}{attempt}", id.step_id),
        fields: serde_json::json!({"mv": "sonic-v5"}),
    }
}

fn submitted(id: &InstanceId, attempt: u32, task: Option<&str>, credits: u64) -> RunEvent {
    RunEvent::Submitted {
        id: id.clone(),
        attempt,
        task_id: task.map(str::to_owned),
        credits,
    }
}

fn created(id: &InstanceId, action: &str, operation: &'static str, credits: u64) -> RunEvent {
    RunEvent::Created {
        id: id.clone(),
        action: serde_json::from_value(serde_json::json!(action)).unwrap(),
        operation,
        planned_credits: credits,
    }
}

fn wav_file(clip: &str) -> SavedFile {
    SavedFile {
        path: format!("rain/{clip}.wav"),
        sha256: "ab".repeat(32),
        bytes: 44_100,
        url: format!("https://cdn.example.com/{clip}.wav"),
        clip_id: Some(clip.to_owned()),
        kind: sonicflow::report::FileKind::Wav,
        ..SavedFile::default()
    }
}

/// The whole run, in the order the engine reported it.
pub fn events() -> Vec<RunEvent> {
    let song_rain = id(0, "rain", 0, "song", &[]);
    let song_sun = id(1, "sun", 0, "song", &[]);
    let wav_rain0 = id(0, "rain", 1, "wav", &[0]);
    let wav_rain1 = id(0, "rain", 1, "wav", &[1]);
    let wav_sun = id(1, "sun", 1, "wav", &[]);
    let clips =
        serde_json::json!({"clips": [{"clip_id": "c-1"}, {"clip_id": "c-2"}], "clip_id": "c-1"});
    vec![
        created(&song_rain, "create", "create_music", 15),
        created(&song_sun, "create", "create_music", 15),
        submitting(&song_rain, 1),
        submitted(
            &song_rain,
            1,
            Some("81ed5c0a-7d3e-4f6b-9a51-0c2f3e4d5a6b"),
            15,
        ),
        submitting(&song_sun, 1),
        RunEvent::Throttled { delay_ms: 2500 },
        submitted(
            &song_sun,
            1,
            Some("2c9f0e11-aaaa-bbbb-cccc-000000000001"),
            15,
        ),
        RunEvent::Retrying {
            id: song_sun.clone(),
            attempt: 1,
            error: StepError::new(ErrorKind::TaskFailed, "the task failed: generation error"),
            delay_ms: 2000,
            refunded: 15,
        },
        RunEvent::Succeeded {
            id: song_rain.clone(),
            outputs: Outputs {
                value: clips,
                files: vec![],
            },
        },
        created(&wav_rain0, "wav", "wav", 2),
        created(&wav_rain1, "wav", "wav", 2),
        submitting(&song_sun, 2),
        submitted(
            &song_sun,
            2,
            Some("2c9f0e11-aaaa-bbbb-cccc-000000000002"),
            15,
        ),
        submitting(&wav_rain0, 1),
        submitted(&wav_rain0, 1, None, 2),
        RunEvent::Succeeded {
            id: wav_rain0.clone(),
            outputs: Outputs {
                value: serde_json::json!({"wav_url": "https://cdn.example.com/c-1.wav"}),
                files: vec![wav_file("c-1")],
            },
        },
        submitting(&wav_rain1, 1),
        RunEvent::Failed {
            id: wav_rain1.clone(),
            attempt: 1,
            error: StepError::new(
                ErrorKind::InDoubt,
                "connection reset after the request was sent\nnot resent",
            ),
            refunded: 0,
            charged: 2,
        },
        RunEvent::Failed {
            id: song_sun.clone(),
            attempt: 2,
            error: StepError::new(ErrorKind::TaskFailed, "the task failed: generation error"),
            refunded: 15,
            charged: 0,
        },
        RunEvent::Stopping {
            reason: StopReason::OutOfCredits,
        },
        RunEvent::Skipped {
            id: wav_sun.clone(),
            reason: "dependency `song` failed".to_owned(),
        },
        RunEvent::Credits { credits: CREDITS },
        RunEvent::Finished {
            summary: Summary {
                succeeded: 2,
                failed: 2,
                skipped: 1,
                credits: CREDITS,
                submits: 5,
                polls: 9,
                stopped: Some(StopReason::OutOfCredits),
                ..Summary::default()
            },
        },
    ]
}

/// A `Write` whose bytes a test can read back while the console owns it.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}
