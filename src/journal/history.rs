//! Reading the past back: one run's journal folded per instance, and
//! everything a new run or a plan can learn from the state folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::entry::{Entry, IndexEntry, Outcome, RunHeader};
use super::error::JournalError;
use super::file::{in_use, read_lines};
use super::{JOURNAL, StateDir};
use crate::engine::{ErrorKind, Outputs, TaskRef};

/// Where one instance stands at the end of a journal.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// Sent, and no answer was recorded: in doubt.
    Sent { attempt: u32 },
    /// Accepted (paid); `task` is what to poll, `None` for a synchronous call
    /// whose answer was never recorded.
    Accepted { task: Option<TaskRef> },
    /// The last attempt was refused or refunded: it may be sent again.
    Released { kind: ErrorKind },
    Succeeded {
        outputs: Outputs,
        reused_from: Option<String>,
    },
    Failed {
        kind: ErrorKind,
        message: String,
        charged: bool,
        /// The task of the last accepted attempt, if it was never followed to the end.
        task: Option<TaskRef>,
    },
}

/// One instance's last request in a journal.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceLog {
    pub hash: String,
    pub fields: Map<String, Value>,
    pub seen: Seen,
    /// Credits charged for it in this run, net of refunds.
    pub credits: u64,
    /// When the last line about it was written.
    pub at: String,
}

/// A run's journal, read back.
#[derive(Debug, Clone)]
pub struct RunLog {
    pub dir: PathBuf,
    pub header: RunHeader,
    /// Set when the run ended (with its status).
    pub finished: Option<String>,
    pub instances: IndexMap<String, InstanceLog>,
    /// How many times it was resumed.
    pub resumed: usize,
}

impl RunLog {
    /// Reads `dir/journal.jsonl`.
    pub fn read(dir: &Path) -> Result<RunLog, JournalError> {
        let path = dir.join(JOURNAL);
        if !path.exists() {
            return Err(JournalError::NotARunFolder {
                dir: dir.to_owned(),
            });
        }
        let entries: Vec<Entry> = read_lines(&path)?;
        let mut iter = entries.into_iter();
        let Some(Entry::Run(header)) = iter.next() else {
            return Err(JournalError::NoHeader { path });
        };
        let mut log = RunLog {
            dir: dir.to_owned(),
            header,
            finished: None,
            instances: IndexMap::new(),
            resumed: 0,
        };
        for entry in iter {
            log.apply(entry);
        }
        Ok(log)
    }

    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Run(_) => {}
            Entry::Resumed { .. } => {
                self.resumed += 1;
                self.finished = None;
            }
            Entry::Finished { status, .. } => self.finished = Some(status),
            Entry::Intent {
                inst,
                hash,
                attempt,
                fields,
                at,
            } => {
                let credits = self.instances.get(&inst).map_or(0, |i| i.credits);
                self.instances.insert(
                    inst,
                    InstanceLog {
                        hash,
                        fields,
                        seen: Seen::Sent { attempt },
                        credits,
                        at,
                    },
                );
            }
            Entry::Accepted {
                inst,
                task,
                credits,
                at,
                ..
            } => {
                if let Some(i) = self.instances.get_mut(&inst) {
                    i.credits += credits;
                    i.seen = Seen::Accepted { task };
                    i.at = at;
                }
            }
            Entry::Released {
                inst,
                kind,
                refunded,
                at,
                ..
            } => {
                if let Some(i) = self.instances.get_mut(&inst) {
                    i.credits = i.credits.saturating_sub(refunded);
                    i.seen = Seen::Released { kind };
                    i.at = at;
                }
            }
            Entry::Succeeded {
                inst,
                hash,
                fields,
                outputs,
                reused_from,
                credits: paid,
                at,
            } => {
                let credits = self.instances.get(&inst).map_or(0, |i| i.credits) + paid;
                self.instances.insert(
                    inst,
                    InstanceLog {
                        hash,
                        fields,
                        seen: Seen::Succeeded {
                            outputs,
                            // An empty name, in older journals: this run's own.
                            reused_from: reused_from.filter(|r| !r.is_empty()),
                        },
                        credits,
                        at,
                    },
                );
            }
            Entry::Failed {
                inst,
                hash,
                fields,
                kind,
                message,
                charged,
                at,
            } => {
                let (credits, task) = match self.instances.get(&inst) {
                    Some(i) => (
                        i.credits,
                        match &i.seen {
                            Seen::Accepted { task } => task.clone(),
                            _ => None,
                        },
                    ),
                    None => (0, None),
                };
                self.instances.insert(
                    inst,
                    InstanceLog {
                        hash,
                        fields,
                        seen: Seen::Failed {
                            kind,
                            message,
                            charged,
                            task,
                        },
                        credits,
                        at,
                    },
                );
            }
        }
    }

    /// The run's name.
    pub fn id(&self) -> &str {
        &self.header.id
    }
}

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
    by_hash: HashMap<String, Vec<usize>>,
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
        let own_dir = own.as_ref().map(|o| super::absolute(&o.dir));
        // The run being resumed answers from its journal, instance by
        // instance; its index lines would let another instance with the same
        // request take its result, and then it would be paid for again.
        index.retain(|e| e.api == api && Some(PathBuf::from(&e.dir)) != own_dir);
        let mut by_hash: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in index.iter().enumerate() {
            by_hash.entry(e.hash.clone()).or_default().push(i);
        }
        let mut unfinished = Vec::new();
        for run in state.runs().unwrap_or_else(|e| {
            warnings.push(e.to_string());
            Vec::new()
        }) {
            let dir = PathBuf::from(&run.dir);
            if Some(&dir) == own_dir.as_ref() || !dir.join(JOURNAL).exists() {
                continue;
            }
            if in_use(&dir.join(JOURNAL)) {
                warnings.push(format!(
                    "run `{}` is still running; its requests in flight are left to it",
                    run.id
                ));
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
        Known {
            pipeline: pipeline.to_owned(),
            own,
            index,
            by_hash,
            unfinished,
            warnings,
        }
    }

    /// Index entries for `hash`, oldest first.
    pub fn indexed(&self, hash: &str) -> impl Iterator<Item = &IndexEntry> {
        self.by_hash
            .get(hash)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.index.get(i))
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
        for e in self
            .index
            .iter()
            .filter(|e| e.pipeline == self.pipeline && e.inst == inst)
        {
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
        Seen::Succeeded { .. } => Outcome::Succeeded,
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
    use super::*;

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
        };
        RunLog {
            dir: PathBuf::from(id),
            header,
            finished: None,
            instances: IndexMap::from([("song".to_owned(), instance)]),
            resumed: 0,
        }
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

    #[test]
    fn an_empty_reused_from_in_an_older_journal_reads_as_this_runs_own_result() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let header = serde_json::to_string(&Entry::Run(super::super::testkit::header("r")))
            .unwrap_or_else(|e| panic!("{e}"));
        let lines = [
            header.as_str(),
            r#"{"type":"succeeded","inst":"song","hash":"h","fields":{},"outputs":{"value":null,"files":[]},"reused_from":"","credits":0,"at":"2026-11-21T10:00:00.000Z"}"#,
            r#"{"type":"succeeded","inst":"wav","hash":"w","fields":{},"outputs":{"value":null,"files":[]},"reused_from":"r0","at":"2026-11-21T10:00:01.000Z"}"#,
        ];
        std::fs::write(dir.path().join(JOURNAL), lines.join("\n") + "\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let log = RunLog::read(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let from: Vec<Option<&str>> = log
            .instances
            .values()
            .map(|i| match &i.seen {
                Seen::Succeeded { reused_from, .. } => reused_from.as_deref(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(from, [None, Some("r0")]);
    }
}
