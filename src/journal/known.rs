//! [`Known`]: everything a new run or a plan can learn from the state
//! folder: the run being resumed, the index of finished requests, and the
//! runs that never finished.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::entry::{IndexEntry, Outcome};
use super::file::{in_use, read_lines};
use super::history::{InstanceLog, RunLog, Seen};
use super::state::{JOURNAL, StateDir};
use crate::engine::ErrorKind;

/// The last request a pipeline's instance made in an earlier run.
#[derive(Debug, Clone, PartialEq)]
pub struct Previous {
    pub run: String,
    pub hash: String,
    pub fields: Map<String, Value>,
    pub outcome: Outcome,
}

/// Everything the state folder knows: the run being resumed, the index of
/// finished requests, and the runs that never finished.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub pipeline: String,
    pub own: Option<RunLog>,
    pub index: Vec<IndexEntry>,
    /// Positions in `index` by request hash, and by instance of `pipeline`.
    lookup: Lookup,
    /// Runs that stopped without finishing (crashed or killed), not in use.
    pub unfinished: Vec<RunLog>,
    /// Problems met while reading, worth a warning.
    pub warnings: Vec<String>,
}

impl Known {
    /// Reads the state folder for a run or plan of `pipeline` against the
    /// API at `api` (`None`: a throwaway sandbox, which shares nothing);
    /// `own` is the run being resumed, if any.
    pub fn load(state: &StateDir, pipeline: &str, api: Option<&str>, own: Option<RunLog>) -> Known {
        let mut warnings = Vec::new();
        let Some(api) = api else {
            return Known {
                pipeline: pipeline.to_owned(),
                own,
                ..Known::default()
            };
        };
        let mut index: Vec<IndexEntry> = read_lines(&state.index_path()).unwrap_or_else(|e| {
            warnings.push(format!("{e}; earlier results will not be reused"));
            Vec::new()
        });
        let own_dir = own.as_ref().map(|o| super::state::absolute(&o.dir));
        // The run being resumed answers from its journal, instance by
        // instance; its index lines would let another instance with the same
        // request take its result, and then it would be paid for again.
        index.retain(|e| e.api == api && Some(PathBuf::from(&e.dir)) != own_dir);
        let mut unfinished = Vec::new();
        // A run holding its lock in a shared store may run on another machine.
        let live = state.live_runs();
        for run in state.runs().unwrap_or_else(|e| {
            warnings.push(e.to_string());
            Vec::new()
        }) {
            let dir = PathBuf::from(&run.dir);
            if Some(&dir) == own_dir.as_ref() || !dir.join(JOURNAL).exists() {
                continue;
            }
            if in_use(&dir.join(JOURNAL)) || live.contains(&run.id) {
                warnings.push(format!(
                    "run `{}` is still running; its requests in flight are left to it",
                    run.id
                ));
                continue;
            }
            // Only runs that never finished are read in full.
            if RunLog::ended(&dir) {
                continue;
            }
            match RunLog::read(&dir) {
                Ok(log) if log.finished.is_none() && log.header.api.as_deref() == Some(api) => {
                    unfinished.push(log)
                }
                Ok(_) => {}
                Err(e) => warnings.push(e.to_string()),
            }
        }
        let lookup = Lookup::of(&index, pipeline, &unfinished);
        Known {
            pipeline: pipeline.to_owned(),
            own,
            index,
            lookup,
            unfinished,
            warnings,
        }
    }

    /// Without what the run in `dir` recorded: a run asks about others.
    pub fn without_run(mut self, dir: &std::path::Path) -> Known {
        let dir = super::state::absolute(dir);
        self.index.retain(|e| std::path::Path::new(&e.dir) != dir);
        self.unfinished
            .retain(|l| super::state::absolute(&l.dir) != dir);
        self.lookup = Lookup::of(&self.index, &self.pipeline, &self.unfinished);
        self
    }

    /// Index entries for `hash`, oldest first.
    pub fn indexed(&self, hash: &str) -> impl Iterator<Item = &IndexEntry> {
        Lookup::find(&self.index, &self.lookup.by_hash, hash)
    }

    /// The instances of runs that never finished whose last request was
    /// `hash`, run by run, each with its run and name.
    pub fn unfinished_with(
        &self,
        hash: &str,
    ) -> impl Iterator<Item = (&RunLog, &String, &InstanceLog)> {
        self.lookup
            .unfinished
            .get(hash)
            .into_iter()
            .flatten()
            .filter_map(|&(r, i)| {
                let log = self.unfinished.get(r)?;
                let (name, inst) = log.instances.get_index(i)?;
                Some((log, name, inst))
            })
    }

    /// When the latest answer to request `hash` of `pipeline`'s instance
    /// `inst` was recorded: a result, a refusal or an accepted task. A send
    /// of the same request left in doubt before then was settled by that
    /// later attempt (the user resent it on purpose) and no longer counts.
    pub fn settled(&self, pipeline: &str, inst: &str, hash: &str) -> Option<&str> {
        let indexed = self
            .indexed(hash)
            .filter(|e| e.pipeline == pipeline && e.inst == inst && e.outcome != Outcome::InDoubt)
            .map(|e| e.at.as_str());
        let unfinished = self
            .unfinished
            .iter()
            .filter(|l| l.header.pipeline == pipeline)
            .filter_map(|l| l.instances.get(inst))
            .filter(|i| i.hash == hash && answered(&i.seen))
            .map(|i| i.at.as_str());
        indexed.chain(unfinished).max()
    }

    /// What the last earlier run of this pipeline asked for `inst`, and how it ended.
    pub fn previous(&self, inst: &str) -> Option<Previous> {
        let own = self.own.as_ref().and_then(|o| {
            o.instances.get(inst).map(|i| Previous {
                run: o.id().to_owned(),
                hash: i.hash.clone(),
                fields: i.fields.clone(),
                outcome: outcome(&i.seen),
            })
        });
        if own.is_some() {
            return own;
        }
        let mut best: Option<(&str, Previous)> = None;
        for e in Lookup::find(&self.index, &self.lookup.by_inst, inst) {
            if best.as_ref().is_none_or(|(at, _)| e.at.as_str() >= *at) {
                let p = Previous {
                    run: e.run.clone(),
                    hash: e.hash.clone(),
                    fields: e.fields.clone(),
                    outcome: e.outcome,
                };
                best = Some((e.at.as_str(), p));
            }
        }
        for log in self
            .unfinished
            .iter()
            .filter(|l| l.header.pipeline == self.pipeline)
        {
            if let Some(i) = log.instances.get(inst)
                && best.as_ref().is_none_or(|(at, _)| i.at.as_str() >= *at)
            {
                let p = Previous {
                    run: log.id().to_owned(),
                    hash: i.hash.clone(),
                    fields: i.fields.clone(),
                    outcome: outcome(&i.seen),
                };
                best = Some((i.at.as_str(), p));
            }
        }
        best.map(|(_, p)| p)
    }
}

/// Where index entries are, so that a look-up by request or by instance
/// reads only the entries it is about, not the whole index.
#[derive(Debug, Clone, Default)]
struct Lookup {
    by_hash: HashMap<String, Vec<usize>>,
    /// Entries of the pipeline being planned or run, by instance name.
    by_inst: HashMap<String, Vec<usize>>,
    /// The unfinished runs' instances by request hash: (run, instance) positions.
    unfinished: HashMap<String, Vec<(usize, usize)>>,
}

impl Lookup {
    fn of(index: &[IndexEntry], pipeline: &str, unfinished: &[RunLog]) -> Lookup {
        let mut lookup = Lookup::default();
        for (i, e) in index.iter().enumerate() {
            lookup.by_hash.entry(e.hash.clone()).or_default().push(i);
            if e.pipeline == pipeline {
                lookup.by_inst.entry(e.inst.clone()).or_default().push(i);
            }
        }
        for (r, log) in unfinished.iter().enumerate() {
            for (i, inst) in log.instances.values().enumerate() {
                let at = lookup.unfinished.entry(inst.hash.clone()).or_default();
                at.push((r, i));
            }
        }
        lookup
    }

    /// The entries `map` files under `key`, oldest first.
    fn find<'a>(
        index: &'a [IndexEntry],
        map: &'a HashMap<String, Vec<usize>>,
        key: &str,
    ) -> impl Iterator<Item = &'a IndexEntry> {
        map.get(key)
            .into_iter()
            .flatten()
            .filter_map(|&i| index.get(i))
    }
}

/// Whether the service answered the instance's last request (a local
/// failure with no task never reached it).
fn answered(seen: &Seen) -> bool {
    match seen {
        Seen::Failed {
            kind: ErrorKind::Local,
            task: None,
            ..
        } => false,
        // Taken from another run: nothing was sent.
        Seen::Succeeded {
            reused_from: Some(_),
            ..
        } => false,
        other => outcome(other) != Outcome::InDoubt,
    }
}

/// How an instance of a journal ended, in the index's terms.
fn outcome(seen: &Seen) -> Outcome {
    match seen {
        // Paid and answered; only its files are missing.
        Seen::Succeeded { .. } | Seen::Unsaved { .. } => Outcome::Succeeded,
        Seen::Sent { .. } | Seen::Accepted { task: None } => Outcome::InDoubt,
        Seen::Accepted { task: Some(_) } => Outcome::Unfinished,
        Seen::Released { .. } => Outcome::Failed,
        Seen::Failed {
            kind: ErrorKind::InDoubt,
            ..
        } => Outcome::InDoubt,
        Seen::Failed { task: Some(_), .. } => Outcome::Unfinished,
        Seen::Failed { .. } => Outcome::Failed,
    }
}

#[cfg(test)]
mod tests {
    use indexmap::IndexMap;

    use super::*;
    use crate::engine::{Outputs, TaskRef};

    fn run_log(id: &str, seen: Seen, at: &str) -> RunLog {
        let header = serde_json::from_value(serde_json::json!({
            "id": id, "pipeline": "p", "manifest": "/p.yaml", "manifest_sha256": "0",
            "price_version": "v", "tool_version": "0", "started_at": at,
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let instance = InstanceLog {
            hash: "h".into(),
            fields: Map::new(),
            seen,
            credits: 0,
            at: at.into(),
            attempts: Vec::new(),
        };
        RunLog {
            dir: PathBuf::from(id),
            header,
            finished: None,
            finished_at: None,
            instances: IndexMap::from([("song".to_owned(), instance)]),
            resumed: 0,
            outcome: None,
            credits: crate::engine::Account::default(),
            needed_cap: None,
            open: IndexMap::new(),
            observed: Vec::new(),
        }
    }

    fn entry(pipeline: &str, run: &str, inst: &str, hash: &str, at: &str) -> IndexEntry {
        IndexEntry {
            api: "http://api".into(),
            pipeline: pipeline.into(),
            run: run.into(),
            dir: format!("/runs/{run}"),
            inst: inst.into(),
            hash: hash.into(),
            outcome: Outcome::Succeeded,
            fields: Map::new(),
            outputs: None,
            task: None,
            error: None,
            at: at.into(),
        }
    }

    #[test]
    fn look_ups_by_instance_and_by_request_find_what_a_scan_of_the_index_would() {
        let index = vec![
            entry("p", "r1", "song", "a", "2026-11-21T09:00:00.000Z"),
            entry("p", "r2", "song", "b", "2026-11-21T11:00:00.000Z"),
            entry("p", "r3", "song", "c", "2026-11-21T10:00:00.000Z"),
            // Another pipeline's instance of the same name is not this one's past.
            entry("other", "r4", "song", "a", "2026-11-21T12:00:00.000Z"),
            entry("p", "r4", "wav", "a", "2026-11-21T12:00:00.000Z"),
        ];
        let mut unfinished = run_log(
            "dead",
            Seen::Sent { attempt: 1 },
            "2026-11-21T08:00:00.000Z",
        );
        unfinished.instances.insert(
            "wav".to_owned(),
            InstanceLog {
                hash: "a".into(),
                ..unfinished.instances["song"].clone()
            },
        );
        // Known is built without its look-ups here; leaving out a run builds them.
        let known = Known {
            pipeline: "p".into(),
            index,
            unfinished: vec![unfinished],
            ..Known::default()
        }
        .without_run(std::path::Path::new("/elsewhere"));
        let latest = known.previous("song").map(|p| (p.run, p.hash));
        assert_eq!(latest, Some(("r2".to_owned(), "b".to_owned())));
        assert_eq!(known.previous("wav").map(|p| p.run).as_deref(), Some("r4"));
        assert_eq!(known.previous("cover"), None);
        let runs: Vec<&str> = known.indexed("a").map(|e| e.run.as_str()).collect();
        assert_eq!(runs, ["r1", "r4", "r4"]);
        let found: Vec<(&str, &str)> = known
            .unfinished_with("a")
            .map(|(log, name, _)| (log.id(), name.as_str()))
            .collect();
        assert_eq!(found, [("dead", "wav")]);
        assert_eq!(known.unfinished_with("h").count(), 1);
        assert_eq!(known.unfinished_with("zzz").count(), 0);
    }

    #[test]
    fn only_an_answer_of_the_service_settles_an_earlier_send() {
        let outputs = Outputs {
            value: Value::Null,
            files: Vec::new(),
        };
        let cases = [
            (
                Seen::Succeeded {
                    outputs: outputs.clone(),
                    reused_from: None,
                },
                true,
            ),
            (
                Seen::Released {
                    kind: ErrorKind::Moderation,
                },
                true,
            ),
            (
                Seen::Accepted {
                    task: Some(TaskRef::new("t")),
                },
                true,
            ),
            // Taken from another run, not sent: says nothing of this request.
            (
                Seen::Succeeded {
                    outputs,
                    reused_from: Some("r0".into()),
                },
                false,
            ),
            (Seen::Sent { attempt: 1 }, false),
            (Seen::Accepted { task: None }, false),
            (
                Seen::Failed {
                    kind: ErrorKind::Local,
                    message: "journal full".into(),
                    charged: false,
                    task: None,
                },
                false,
            ),
        ];
        for (seen, settles) in cases {
            let later = "2026-11-21T10:00:00.000Z";
            let known = Known {
                pipeline: "p".into(),
                unfinished: vec![
                    run_log(
                        "dead",
                        Seen::Sent { attempt: 1 },
                        "2026-11-21T09:00:00.000Z",
                    ),
                    run_log("later", seen.clone(), later),
                ],
                ..Known::default()
            };
            let got = known.settled("p", "song", "h");
            assert_eq!(got, settles.then_some(later), "{seen:?}");
            assert_eq!(known.settled("other", "song", "h"), None);
            assert_eq!(known.settled("p", "other", "h"), None);
        }
    }
}
