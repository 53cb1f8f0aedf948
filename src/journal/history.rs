//! Reading one run's journal back: its lines folded into where each of its
//! instances stands.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::entry::{Entry, RunHeader};
use super::error::JournalError;
use super::file::read_lines;
use super::state::JOURNAL;
use crate::engine::{Account, EarlierAttempt, ErrorKind, Outputs, StepError, TaskRef};

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
    /// A synchronous call was answered and paid, and its files could not be
    /// saved: the answer is kept, so only the files are fetched again.
    Unsaved { outputs: Outputs, message: String },
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
    /// The submits of its last request, first to last, as the journal
    /// tells them, however often the run was resumed after them.
    pub attempts: Vec<EarlierAttempt>,
}

impl InstanceLog {
    /// When its last request was sent, and as which attempt: what a send in
    /// doubt is known by.
    pub fn sent(&self) -> Option<(&str, u32)> {
        self.attempts
            .last()
            .map(|a| (a.sent_at.as_str(), a.attempt))
    }

    /// The attempt numbered `attempt`, if the journal holds its send.
    fn attempt_mut(&mut self, attempt: u32) -> Option<&mut EarlierAttempt> {
        self.attempts
            .iter_mut()
            .rev()
            .find(|a| a.attempt == attempt)
    }

    /// Records how the last attempt ended, unless that is known already.
    fn close_last(&mut self, error: Option<StepError>, at: &str) {
        if let Some(a) = self.attempts.last_mut()
            && a.finished_at.is_none()
        {
            a.error = error;
            a.finished_at = Some(at.to_owned());
        }
    }
}

/// A run's journal, read back.
#[derive(Debug, Clone)]
pub struct RunLog {
    pub dir: PathBuf,
    pub header: RunHeader,
    /// Set when the run ended (with its status).
    pub finished: Option<String>,
    /// When it ended, with `finished`.
    pub finished_at: Option<String>,
    pub instances: IndexMap<String, InstanceLog>,
    /// How many times it was resumed.
    pub resumed: usize,
    /// How it ended, when the journal says ([`RunOutcome::verdict`](crate::engine::RunOutcome::verdict)).
    pub outcome: Option<String>,
    /// What the run was charged over all its processes, every request
    /// counted (also those a manifest edit replaced).
    pub credits: Account,
    /// For a run stopped by the cap: the cap its resume needs to finish.
    pub needed_cap: Option<u64>,
    /// Price of each instance's send still unanswered (only while reading).
    pub(super) open: IndexMap<String, u64>,
    /// The balance windows the run journaled, first to last.
    pub observed: Vec<crate::engine::observe::Window>,
}

impl RunLog {
    /// Whether the journal in `dir` ends with the run's end, read from its
    /// last line alone: a finished run is known as one without reading the
    /// whole journal. `false` when that cannot be told that way (the last
    /// line is something else, torn, or unreadable); the full read decides.
    pub fn ended(dir: &Path) -> bool {
        use std::io::{Read as _, Seek as _, SeekFrom};
        /// Far longer than a run's last line.
        const TAIL: u64 = 64 * 1024;
        let Ok(mut file) = std::fs::File::open(dir.join(JOURNAL)) else {
            return false;
        };
        let Ok(len) = file.seek(SeekFrom::End(0)) else {
            return false;
        };
        let mut tail = Vec::new();
        let read = file
            .seek(SeekFrom::Start(len.saturating_sub(TAIL)))
            .and_then(|_| file.read_to_end(&mut tail));
        if read.is_err() || tail.last() != Some(&b'\n') {
            return false;
        }
        let Some(last) = tail
            .split(|&b| b == b'\n')
            .rev()
            .find(|l| !l.iter().all(u8::is_ascii_whitespace))
        else {
            return false;
        };
        matches!(serde_json::from_slice(last), Ok(Entry::Finished { .. }))
    }

    /// Reads only the header of `dir/journal.jsonl`: which pipeline and state
    /// folder the run belongs to, to lock them before the journal is read.
    pub fn header(dir: &Path) -> Result<RunHeader, JournalError> {
        use std::io::{BufRead as _, Read as _};
        let path = dir.join(JOURNAL);
        let file = std::fs::File::open(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                JournalError::NotARunFolder {
                    dir: dir.to_owned(),
                }
            } else {
                JournalError::Read {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        let mut first = String::new();
        // A header is a few hundred bytes; a line longer than this is no header.
        std::io::BufReader::new(file.take(1 << 20))
            .read_line(&mut first)
            .map_err(|source| JournalError::Read {
                path: path.clone(),
                source,
            })?;
        match serde_json::from_str(&first) {
            Ok(Entry::Run(header)) => Ok(header),
            _ => Err(JournalError::NoHeader { path }),
        }
    }

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
            finished_at: None,
            instances: IndexMap::new(),
            resumed: 0,
            outcome: None,
            needed_cap: None,
            credits: Account::default(),
            open: IndexMap::new(),
            observed: Vec::new(),
        };
        for entry in iter {
            log.apply(entry);
        }
        // Sends never answered may have been charged: they count.
        for (_, credits) in std::mem::take(&mut log.open) {
            log.credits.doubt(credits);
        }
        Ok(log)
    }

    /// The send of `inst` still unanswered is answered (or was never made).
    fn answered(&mut self, inst: &str) {
        self.open.shift_remove(inst);
    }

    /// The send of `inst` still unanswered will never be answered.
    fn doubted(&mut self, inst: &str) {
        if let Some(credits) = self.open.shift_remove(inst) {
            self.credits.doubt(credits);
        }
    }

    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Run(_) => {}
            Entry::Observed(window) => self.observed.push(window),
            Entry::Resumed { .. } => {
                self.resumed += 1;
                self.finished = None;
                self.finished_at = None;
            }
            Entry::Finished {
                status,
                outcome,
                needed_cap,
                at,
                ..
            } => {
                self.finished = Some(status);
                self.finished_at = Some(at);
                self.outcome = outcome;
                self.needed_cap = needed_cap;
            }
            Entry::Intent {
                inst,
                hash,
                attempt,
                fields,
                credits,
                at,
            } => {
                // A send before it that was never answered stays in doubt.
                self.doubted(&inst);
                self.open.insert(inst.clone(), credits);
                let sent = EarlierAttempt {
                    attempt,
                    sent_at: at.clone(),
                    task_id: None,
                    accepted_at: None,
                    error: None,
                    finished_at: None,
                };
                self.put(inst.clone(), hash, fields, Seen::Sent { attempt }, 0, at);
                if let Some(i) = self.instances.get_mut(&inst) {
                    i.attempts.push(sent);
                }
            }
            Entry::Accepted {
                inst,
                attempt,
                task,
                credits,
                at,
                ..
            } => {
                self.answered(&inst);
                self.credits.charge(credits);
                if let Some(i) = self.instances.get_mut(&inst) {
                    if let Some(a) = i.attempt_mut(attempt) {
                        a.task_id = task.as_ref().map(|t| t.id.clone());
                        a.accepted_at = Some(at.clone());
                    }
                    i.credits += credits;
                    i.seen = Seen::Accepted { task };
                    i.at = at;
                }
            }
            Entry::Released {
                inst,
                attempt,
                kind,
                message,
                refunded,
                at,
                ..
            } => {
                self.answered(&inst);
                self.credits.refund(refunded);
                if let Some(i) = self.instances.get_mut(&inst) {
                    if let Some(a) = i.attempt_mut(attempt) {
                        let message = message.unwrap_or_else(|| "refused or refunded".to_owned());
                        a.error = Some(StepError::new(kind, message));
                        a.finished_at = Some(at.clone());
                    }
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
                credits,
                at,
            } => {
                // An empty name, in older journals: this run's own.
                let reused_from = reused_from.filter(|r| !r.is_empty());
                if reused_from.is_none() {
                    self.answered(&inst);
                    self.credits.charge(credits);
                }
                // Another run's result answers none of this run's sends.
                let own = reused_from.is_none();
                let seen = Seen::Succeeded {
                    outputs,
                    reused_from,
                };
                self.put(inst.clone(), hash, fields, seen, credits, at.clone());
                if let Some(i) = self.instances.get_mut(&inst)
                    && own
                {
                    i.close_last(None, &at);
                }
            }
            Entry::Failed {
                inst,
                hash,
                fields,
                kind,
                message,
                charged,
                credits,
                outputs,
                at,
            } => {
                if kind == ErrorKind::InDoubt {
                    self.doubted(&inst);
                } else {
                    self.answered(&inst);
                }
                self.credits.charge(credits);
                let task = match self.instances.get(&inst).map(|i| &i.seen) {
                    Some(Seen::Accepted { task }) => task.clone(),
                    _ => None,
                };
                let error = StepError {
                    charged,
                    ..StepError::new(kind, message.clone())
                };
                let seen = match outputs {
                    Some(outputs) => Seen::Unsaved { outputs, message },
                    None => Seen::Failed {
                        kind,
                        message,
                        charged,
                        task,
                    },
                };
                self.put(inst.clone(), hash, fields, seen, credits, at.clone());
                if let Some(i) = self.instances.get_mut(&inst) {
                    i.close_last(Some(error), &at);
                }
            }
        }
    }

    /// Puts `inst`'s request `hash` at `seen`, keeping what it was charged
    /// before, plus `paid`.
    fn put(
        &mut self,
        inst: String,
        hash: String,
        fields: Map<String, Value>,
        seen: Seen,
        paid: u64,
        at: String,
    ) {
        let before = self.instances.get(&inst);
        let credits = before.map_or(0, |i| i.credits) + paid;
        let attempts = before
            .filter(|i| i.hash == hash)
            .map(|i| i.attempts.clone())
            .unwrap_or_default();
        let log = InstanceLog {
            hash,
            fields,
            seen,
            credits,
            at,
            attempts,
        };
        self.instances.insert(inst, log);
    }

    /// The run's name.
    pub fn id(&self) -> &str {
        &self.header.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_journal_is_known_as_ended_from_its_last_line_only_when_the_full_read_agrees() {
        let header = serde_json::to_string(&Entry::Run(super::super::testkit::header("r")))
            .unwrap_or_else(|e| panic!("{e}"));
        let song = r#"{"type":"intent","inst":"song","hash":"h","attempt":1,"fields":{},"credits":1,"at":"2026-11-21T10:00:00.000Z"}"#;
        let finished =
            r#"{"type":"finished","status":"succeeded","at":"2026-11-21T10:00:01.000Z"}"#;
        let resumed = r#"{"type":"resumed","at":"2026-11-21T10:00:02.000Z"}"#;
        let cases: [(&[&str], &str, bool); 5] = [
            (&[song, finished], "\n", true),
            (&[song, finished], "\n\n", true),
            // Taken up again after it ended: the last line is not its end.
            (&[song, finished, resumed], "\n", false),
            (&[song], "\n", false),
            // A torn last line is left to the full read.
            (&[song, &finished[..20]], "", false),
        ];
        for (lines, end, ended) in cases {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let all: Vec<&str> = std::iter::once(header.as_str())
                .chain(lines.iter().copied())
                .collect();
            std::fs::write(dir.path().join(JOURNAL), all.join("\n") + end)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(RunLog::ended(dir.path()), ended, "{lines:?}");
            let log = RunLog::read(dir.path()).unwrap_or_else(|e| panic!("{e}"));
            if ended {
                assert!(log.finished.is_some(), "{lines:?}");
            }
        }
        let missing = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert!(!RunLog::ended(missing.path()));
    }

    /// What a resume of `log` remembers, with no other runs beside it.
    fn memory_of(log: &RunLog) -> super::super::RunMemory {
        let known = super::super::Known::load(
            &super::super::StateDir::local(log.dir.join("state")),
            "p",
            None,
            Some(log.clone()),
        );
        super::super::RunMemory::read_only(known, super::super::Policy::default())
    }

    fn read(lines: &[&str]) -> RunLog {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let header = serde_json::to_string(&Entry::Run(super::super::testkit::header("r")))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut text = header + "\n";
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(dir.path().join(JOURNAL), text).unwrap_or_else(|e| panic!("{e}"));
        RunLog::read(dir.path()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_send_in_doubt_keeps_its_time_and_attempt_across_resumes_and_counts_once() {
        let log = read(&[
            r#"{"type":"intent","inst":"song","hash":"h","attempt":2,"fields":{},"credits":15,"at":"2026-11-21T10:00:00.000Z"}"#,
            r#"{"type":"resumed","at":"2026-11-21T11:00:00.000Z"}"#,
            r#"{"type":"failed","inst":"song","hash":"h","fields":{},"kind":"in_doubt","message":"m","charged":true,"at":"2026-11-21T11:00:01.000Z"}"#,
            r#"{"type":"resumed","at":"2026-11-21T12:00:00.000Z"}"#,
            r#"{"type":"failed","inst":"song","hash":"h","fields":{},"kind":"in_doubt","message":"m","charged":true,"at":"2026-11-21T12:00:01.000Z"}"#,
        ]);
        let song = &log.instances["song"];
        assert_eq!(
            song.sent(),
            Some(("2026-11-21T10:00:00.000Z", 2)),
            "the send, not the resume"
        );
        let c = log.credits;
        assert_eq!((c.charged, c.in_doubt, c.net), (15, 15, 15));
        let memory = memory_of(&log);
        let recall = crate::engine::Memory::recall(&memory, &super::super::testkit::job());
        let crate::engine::Recall::InDoubt {
            from: None,
            since,
            attempt: Some(2),
            earlier,
        } = recall
        else {
            panic!("{recall:?}");
        };
        assert_eq!(since, "2026-11-21T10:00:00.000Z");
        let attempts: Vec<_> = earlier
            .iter()
            .map(|a| {
                (
                    a.attempt,
                    a.sent_at.as_str(),
                    a.error.as_ref().map(|e| e.kind),
                )
            })
            .collect();
        assert_eq!(
            attempts,
            [(2, "2026-11-21T10:00:00.000Z", Some(ErrorKind::InDoubt))]
        );
    }

    #[test]
    fn a_send_in_doubt_journaled_under_its_position_is_found_under_its_name() {
        let log = read(&[
            r#"{"type":"intent","inst":"song[1]","hash":"h","attempt":1,"fields":{},"credits":15,"at":"2026-11-21T10:00:00.000Z"}"#,
        ]);
        let memory = memory_of(&log);
        let mut job = super::super::testkit::job();
        job.id.path = vec![1];
        job.id.names = vec!["lo-fi".into()];
        assert_eq!(job.id.to_string(), "song[lo-fi]");
        let recall = crate::engine::Memory::recall(&memory, &job);
        assert!(
            matches!(recall, crate::engine::Recall::InDoubt { from: None, .. }),
            "never sent again: {recall:?}"
        );
    }

    #[test]
    fn the_attempts_of_a_request_keep_their_errors_and_start_again_when_it_changes() {
        let log = read(&[
            r#"{"type":"intent","inst":"song","hash":"h","attempt":1,"fields":{},"credits":15,"at":"2026-11-21T10:00:00.000Z"}"#,
            r#"{"type":"released","inst":"song","hash":"h","attempt":1,"kind":"transient","message":"HTTP 502","refunded":0,"at":"2026-11-21T10:00:01.000Z"}"#,
            r#"{"type":"intent","inst":"song","hash":"h","attempt":2,"fields":{},"credits":15,"at":"2026-11-21T10:00:05.000Z"}"#,
            r#"{"type":"accepted","inst":"song","hash":"h","attempt":2,"task":{"id":"t2"},"credits":15,"at":"2026-11-21T10:00:06.000Z"}"#,
            r#"{"type":"released","inst":"song","hash":"h","attempt":2,"kind":"task_failed","refunded":15,"at":"2026-11-21T10:01:00.000Z"}"#,
            r#"{"type":"intent","inst":"song","hash":"h","attempt":3,"fields":{},"credits":15,"at":"2026-11-21T10:02:00.000Z"}"#,
            // An edited request starts its own history.
            r#"{"type":"intent","inst":"wav","hash":"w1","attempt":1,"fields":{},"credits":2,"at":"2026-11-21T10:03:00.000Z"}"#,
            r#"{"type":"resumed","at":"2026-11-21T11:00:00.000Z"}"#,
            r#"{"type":"intent","inst":"wav","hash":"w2","attempt":1,"fields":{},"credits":2,"at":"2026-11-21T11:00:01.000Z"}"#,
        ]);
        let song: Vec<_> = log.instances["song"]
            .attempts
            .iter()
            .map(|a| {
                let error = a.error.as_ref().map(|e| (e.kind, e.message.as_str()));
                (
                    a.attempt,
                    a.task_id.as_deref(),
                    error,
                    a.finished_at.is_some(),
                )
            })
            .collect();
        assert_eq!(
            song,
            [
                (1, None, Some((ErrorKind::Transient, "HTTP 502")), true),
                (
                    2,
                    Some("t2"),
                    Some((ErrorKind::TaskFailed, "refused or refunded")),
                    true
                ),
                (3, None, None, false),
            ]
        );
        let wav = &log.instances["wav"];
        assert_eq!(wav.sent(), Some(("2026-11-21T11:00:01.000Z", 1)));
        assert_eq!(wav.attempts.len(), 1);
    }

    #[test]
    fn every_request_of_a_run_counts_also_those_an_edit_replaced() {
        let log = read(&[
            // Paid, then replaced by an edited request on resume.
            r#"{"type":"intent","inst":"song","hash":"h1","attempt":1,"fields":{},"credits":15,"at":"2026-11-21T10:00:00.000Z"}"#,
            r#"{"type":"accepted","inst":"song","hash":"h1","attempt":1,"task":{"id":"t1"},"credits":15,"at":"2026-11-21T10:00:01.000Z"}"#,
            r#"{"type":"resumed","at":"2026-11-21T11:00:00.000Z"}"#,
            r#"{"type":"intent","inst":"song","hash":"h2","attempt":1,"fields":{},"credits":15,"at":"2026-11-21T11:00:01.000Z"}"#,
            r#"{"type":"accepted","inst":"song","hash":"h2","attempt":1,"task":{"id":"t2"},"credits":15,"at":"2026-11-21T11:00:02.000Z"}"#,
            // Refunded.
            r#"{"type":"released","inst":"song","hash":"h2","attempt":1,"kind":"task_failed","refunded":15,"at":"2026-11-21T11:00:03.000Z"}"#,
            // In doubt, then replaced by an edit: still in doubt.
            r#"{"type":"intent","inst":"other","hash":"o1","attempt":1,"fields":{},"credits":15,"at":"2026-11-21T11:00:04.000Z"}"#,
            r#"{"type":"intent","inst":"other","hash":"o2","attempt":1,"fields":{},"credits":15,"at":"2026-11-21T12:00:00.000Z"}"#,
            // A WAV paid whose file could not be saved.
            r#"{"type":"intent","inst":"wav","hash":"w","attempt":1,"fields":{},"credits":2,"at":"2026-11-21T12:00:01.000Z"}"#,
            r#"{"type":"failed","inst":"wav","hash":"w","fields":{},"kind":"local","message":"disk full","charged":true,"credits":2,"outputs":{"value":{"wav_url":"u"},"files":[]},"at":"2026-11-21T12:00:02.000Z"}"#,
        ]);
        let c = log.credits;
        // 15 + 15 accepted, 15 + 15 in doubt (the second never answered either), 2 paid.
        assert_eq!((c.charged, c.refunded, c.in_doubt, c.net), (62, 15, 30, 47));
        assert!(matches!(log.instances["wav"].seen, Seen::Unsaved { .. }));
        assert_eq!(log.instances["wav"].credits, 2);
    }
}
