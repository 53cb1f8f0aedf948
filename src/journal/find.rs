//! Finding an earlier answer to a request: candidates from the run's own
//! journal, from runs that never finished and from the index, each with
//! its [`Rank`]; the best one is taken.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::path::Path;

use super::entry::Outcome;
use super::history::{InstanceLog, Seen};
use super::known::Known;
use super::policy::Policy;
use super::rank::{Offer, Rank};
use super::reuse::{Kept, usable};
use crate::engine::{Dependents, EarlierAttempt, ErrorKind, Job, Recall, TaskRef};

/// An earlier request as `(run, instance)`: once an instance of this run
/// takes it, no other instance may.
pub(super) type Key = (String, String);

/// What an earlier request offers.
enum Found {
    Reuse(Kept),
    Attach(TaskRef),
    InDoubt {
        since: String,
        attempt: Option<u32>,
        earlier: Vec<EarlierAttempt>,
    },
}

impl Found {
    fn offer(&self) -> Offer {
        match self {
            Found::Reuse(_) => Offer::Result,
            Found::Attach(_) => Offer::Task,
            Found::InDoubt { .. } => Offer::InDoubt,
        }
    }
}

/// A candidate answer and where it comes from.
struct Candidate {
    rank: Rank,
    key: Key,
    /// The run it was found in; `None` for the run being resumed.
    from: Option<String>,
    /// What this run already paid for it (on resume).
    credits: u64,
    found: Found,
}

impl Candidate {
    /// The answer, once a result's files are brought into `target`;
    /// `None` when they cannot be.
    fn recall(self, target: Option<&Path>) -> Option<(Key, Recall)> {
        let Candidate {
            key,
            from,
            credits,
            found,
            ..
        } = self;
        let recall = match found {
            Found::Reuse(kept) => Recall::Reuse {
                outputs: kept.bring(target)?,
                from,
                credits,
            },
            Found::Attach(task) => Recall::Attach {
                task,
                from,
                credits,
            },
            Found::InDoubt {
                since,
                attempt,
                earlier,
            } => Recall::InDoubt {
                from,
                since,
                attempt,
                earlier,
            },
        };
        Some((key, recall))
    }
}

/// The search for earlier answers to one request of instance `inst`.
pub(super) struct Search<'a> {
    known: &'a Known,
    policy: &'a Policy,
    /// Earlier requests that instances of this run already took.
    claimed: &'a HashSet<Key>,
    inst: &'a str,
    /// The instance's name by position, for journals written before names.
    positional: String,
    hash: &'a str,
    may_reuse: bool,
    /// The requests that would read a result's outputs, to prefer the
    /// result under which they have results too.
    dependents: Option<&'a Dependents<'a>>,
    found: Vec<Candidate>,
}

impl<'a> Search<'a> {
    pub(super) fn new(
        known: &'a Known,
        policy: &'a Policy,
        claimed: &'a HashSet<Key>,
        job: &'a Job,
        inst: &'a str,
    ) -> Search<'a> {
        Search {
            known,
            policy,
            claimed,
            inst,
            positional: job.id.positional(),
            hash: &job.request_hash,
            may_reuse: policy.reuse && !policy.force.contains(&job.id.step_id),
            dependents: None,
            found: Vec::new(),
        }
    }

    /// Ranks results by how many of `dependents`' requests have results under them.
    pub(super) fn preferring(mut self, dependents: &'a Dependents<'a>) -> Self {
        self.dependents = Some(dependents);
        self
    }

    /// The best answer, with the earlier request it takes; a result's
    /// files are brought into `target`, this run's folder.
    pub(super) fn best(mut self, target: Option<&Path>) -> Option<(Key, Recall)> {
        self.own_journal();
        // Other runs count only when the run's own journal has no answer.
        if self.found.is_empty() && self.policy.others {
            self.unfinished_runs();
            self.index();
        }
        self.weigh_dependents();
        self.found.sort_by_key(|c| Reverse(c.rank));
        // Only the best brings its files in; an expired result that cannot
        // bring them all gives way to the next.
        self.found.into_iter().find_map(|c| c.recall(target))
    }

    /// Where more than one result would do, counts for each the requests
    /// built on it that would have results too.
    fn weigh_dependents(&mut self) {
        let Some(dependents) = self.dependents else {
            return;
        };
        let results = self
            .found
            .iter()
            .filter(|c| matches!(c.found, Found::Reuse(_)))
            .count();
        if results < 2 {
            return;
        }
        let (known, policy, claimed) = (self.known, self.policy, self.claimed);
        for c in &mut self.found {
            if let Found::Reuse(kept) = &c.found {
                c.rank.dependents_reused = dependents(kept.outputs())
                    .iter()
                    .filter(|job| has_result(known, policy, claimed, job))
                    .count();
            }
        }
    }

    /// The run being resumed, for the same instance only.
    fn own_journal(&mut self) {
        let Some(own) = &self.known.own else {
            return;
        };
        // A journal begun before instances were named holds them by position.
        let names = [self.inst, self.positional.as_str()];
        let Some((inst, i)) = names.into_iter().find_map(|name| {
            let i = own.instances.get(name).filter(|i| i.hash == self.hash)?;
            Some((name, i))
        }) else {
            return;
        };
        if let Some(found) = self.journaled(i, &own.dir, false, true) {
            let key = (own.id().to_owned(), inst.to_owned());
            self.offer(key, None, i.credits, found);
        }
    }

    /// Runs that stopped without finishing, any instance.
    fn unfinished_runs(&mut self) {
        let known = self.known;
        for (log, k, i) in known.unfinished_with(self.hash) {
            let settled = self.settled(&log.header.pipeline, k, &i.at);
            if let Some(found) = self.journaled(i, &log.dir, settled, false) {
                let key = (log.id().to_owned(), k.clone());
                self.offer(key, Some(log.id().to_owned()), 0, found);
            }
        }
    }

    /// Requests other runs finished (or left in doubt), any instance.
    fn index(&mut self) {
        let known = self.known;
        for e in known.indexed(self.hash) {
            let found = match (e.outcome, &e.outputs, &e.task) {
                (Outcome::Succeeded, Some(outputs), _) if self.may_reuse => {
                    usable(self.policy, Path::new(&e.dir), &e.at, outputs).map(Found::Reuse)
                }
                (Outcome::Unfinished, _, Some(t)) => Some(Found::Attach(t.clone())),
                (Outcome::InDoubt, ..)
                    if !self.policy.resend_in_doubt
                        && !self.settled(&e.pipeline, &e.inst, &e.at) =>
                {
                    Some(Found::InDoubt {
                        since: e.at.clone(),
                        attempt: None,
                        earlier: Vec::new(),
                    })
                }
                _ => None,
            };
            if let Some(found) = found {
                let key = (e.run.clone(), e.inst.clone());
                self.offer(key, Some(e.run.clone()), 0, found);
            }
        }
    }

    /// What an instance's journal offers: its result, its task to poll, or
    /// a send in doubt (unless resending is allowed or a later answer
    /// `settled` it). The run's `own` results are taken whatever the reuse
    /// flags say: they only keep other runs' results out, and a resume
    /// never pays again for what the run itself finished.
    fn journaled(&self, i: &InstanceLog, dir: &Path, settled: bool, own: bool) -> Option<Found> {
        match &i.seen {
            Seen::Succeeded { outputs, .. } | Seen::Unsaved { outputs, .. }
                if self.may_reuse || own =>
            {
                usable(self.policy, dir, &i.at, outputs).map(Found::Reuse)
            }
            Seen::Accepted { task: Some(t) } | Seen::Failed { task: Some(t), .. } => {
                Some(Found::Attach(t.clone()))
            }
            Seen::Sent { .. }
            | Seen::Accepted { task: None }
            | Seen::Failed {
                kind: ErrorKind::InDoubt,
                ..
            } if !self.policy.resend_in_doubt && !settled => {
                // Known by when it was sent, not by when a resume last met it.
                let (since, attempt) = match i.sent() {
                    Some((at, attempt)) => (at.to_owned(), Some(attempt)),
                    None => (i.at.clone(), None),
                };
                Some(Found::InDoubt {
                    since,
                    attempt,
                    earlier: i.attempts.clone(),
                })
            }
            _ => None,
        }
    }

    /// Whether a send left in doubt at `at` by another run was answered by
    /// a later attempt at the same request.
    fn settled(&self, pipeline: &str, inst: &str, at: &str) -> bool {
        self.known
            .settled(pipeline, inst, self.hash)
            .is_some_and(|later| later > at)
    }

    /// Adds a candidate unless an instance of this run already took it.
    fn offer(&mut self, key: Key, from: Option<String>, credits: u64, found: Found) {
        if self.claimed.contains(&key) {
            return;
        }
        let rank = Rank {
            own_run: from.is_none(),
            offer: found.offer(),
            dependents_reused: 0,
            same_instance: key.1 == self.inst,
            found: self.found.len(),
        };
        self.found.push(Candidate {
            rank,
            key,
            from,
            credits,
            found,
        });
    }
}

/// Whether `job` would be answered with an earlier result (nothing is
/// claimed and no file is brought).
fn has_result(known: &Known, policy: &Policy, claimed: &HashSet<Key>, job: &Job) -> bool {
    let inst = job.id.to_string();
    let search = Search::new(known, policy, claimed, job, &inst);
    matches!(search.best(None), Some((_, Recall::Reuse { .. })))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::{Duration, SystemTime};

    use serde_json::{Map, Value, json};

    use super::super::entry::IndexEntry;
    use super::super::file::LineLog;
    use super::super::memory::RunMemory;
    use super::super::policy::Policy;
    use super::super::state::StateDir;
    use super::super::testkit::{API, header, job};
    use super::*;
    use crate::engine::{Memory, Outputs, SavedFile};

    /// A state folder whose index holds, oldest first, a result of `song`
    /// from each run `(name, downloaded file)`, then a new run `this` in
    /// `dir` remembering from it.
    struct Fixture {
        _root: tempfile::TempDir,
        dir: PathBuf,
        memory: RunMemory,
    }

    fn fixture(runs: &[(&str, &str)], value: &Value, policy: Policy) -> Fixture {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = StateDir::local(root.path().join("state"));
        state.ensure().unwrap_or_else(|e| panic!("{e}"));
        let mut index = LineLog::open(&state.index_path(), false).unwrap_or_else(|e| panic!("{e}"));
        for (n, (run, file)) in runs.iter().enumerate() {
            let entry = earlier(&state, run, file, value, n);
            index.append(&entry).unwrap_or_else(|e| panic!("{e}"));
        }
        let known = Known::load(&state, "p", Some(API), None);
        let dir = root.path().join("this");
        let memory = RunMemory::start(&state, &dir, &header("this"), known, policy)
            .unwrap_or_else(|e| panic!("{e}"));
        Fixture {
            _root: root,
            dir,
            memory,
        }
    }

    /// The `n`-th earlier run in `state`, which downloaded `file` for the request.
    fn earlier(state: &StateDir, run: &str, file: &str, value: &Value, n: usize) -> IndexEntry {
        let dir = state.root.join("runs").join(run);
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap_or(&dir)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&path, run).unwrap_or_else(|e| panic!("{e}"));
        IndexEntry {
            api: API.into(),
            pipeline: "p".into(),
            run: run.into(),
            dir: dir.display().to_string(),
            inst: "song".into(),
            hash: "h".into(),
            outcome: Outcome::Succeeded,
            fields: Map::new(),
            outputs: Some(Outputs {
                value: value.clone(),
                files: vec![SavedFile {
                    path: file.into(),
                    sha256: "0".into(),
                    bytes: 3,
                    url: format!("https://cdn.example.com/{file}"),
                    ..SavedFile::default()
                }],
            }),
            task: None,
            error: None,
            at: format!("2026-11-21T0{n}:00:00.000Z"),
        }
    }

    #[test]
    fn only_the_winning_answer_brings_its_files_into_the_run_folder() {
        let runs = [("older", "song/older.mp3"), ("newer", "song/newer.mp3")];
        let f = fixture(&runs, &json!({ "clip_id": "c" }), Policy::default());
        let Recall::Reuse { outputs, from, .. } = f.memory.recall(&job()) else {
            panic!("the newer result is reused");
        };
        assert_eq!(from.as_deref(), Some("newer"));
        assert_eq!(outputs.files.len(), 1);
        assert!(
            f.dir.join("song/newer.mp3").is_file(),
            "the winner's file is brought"
        );
        assert!(
            !f.dir.join("song/older.mp3").exists(),
            "the losing answer's file stays in its own run"
        );
    }

    #[test]
    fn an_expired_result_whose_files_cannot_be_brought_gives_way_to_the_next() {
        let runs = [("older", "song/older.mp3"), ("newer", "blocked/newer.mp3")];
        let policy = Policy {
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            ..Policy::default()
        };
        let value = json!({ "audio_url": "https://cdn.example.com/gone.mp3" });
        let f = fixture(&runs, &value, policy);
        // A file where the newer result's folder would go: its file cannot be linked.
        std::fs::write(f.dir.join("blocked"), "").unwrap_or_else(|e| panic!("{e}"));
        let Recall::Reuse { outputs, from, .. } = f.memory.recall(&job()) else {
            panic!("the older result, whose file can be brought, is reused");
        };
        assert_eq!(from.as_deref(), Some("older"));
        assert_eq!(outputs.files.len(), 1);
        assert!(f.dir.join("song/older.mp3").is_file());
    }
}

#[cfg(test)]
mod preference {
    use serde_json::{Map, json};

    use super::super::entry::IndexEntry;
    use super::super::file::LineLog;
    use super::super::memory::RunMemory;
    use super::super::state::StateDir;
    use super::super::testkit::{API, job};
    use super::*;
    use crate::engine::{Memory, Outputs};

    /// An index entry: run `run` got `clip` for request `hash` of `inst`.
    fn result(
        state: &StateDir,
        run: &str,
        inst: &str,
        hash: &str,
        clip: &str,
        n: usize,
    ) -> IndexEntry {
        IndexEntry {
            api: API.into(),
            pipeline: "p".into(),
            run: run.into(),
            dir: state.root.join("runs").join(run).display().to_string(),
            inst: inst.into(),
            hash: hash.into(),
            outcome: Outcome::Succeeded,
            fields: Map::new(),
            outputs: Some(Outputs {
                value: json!({ "clip_id": clip }),
                files: Vec::new(),
            }),
            task: None,
            error: None,
            at: format!("2026-11-21T0{n}:00:00.000Z"),
        }
    }

    /// `song` was answered twice, `old` then `new`; only `old`'s reader
    /// (`cover`, whose request names the clip) has a result of its own.
    fn memory(root: &Path) -> RunMemory {
        let state = StateDir::local(root.join("state"));
        state.ensure().unwrap_or_else(|e| panic!("{e}"));
        let mut index = LineLog::open(&state.index_path(), false).unwrap_or_else(|e| panic!("{e}"));
        for entry in [
            result(&state, "first", "song", "h", "old", 1),
            result(&state, "first", "cover", "cover-of-old", "c", 2),
            result(&state, "second", "song", "h", "new", 3),
        ] {
            index.append(&entry).unwrap_or_else(|e| panic!("{e}"));
        }
        let known = Known::load(&state, "p", Some(API), None);
        RunMemory::read_only(known, Policy::default())
    }

    /// The request `cover` would make with these outputs of `song`.
    fn cover(outputs: &Outputs) -> Vec<Job> {
        let mut cover = job();
        cover.id.step_id = "cover".into();
        cover.request_hash = format!(
            "cover-of-{}",
            outputs.value["clip_id"].as_str().unwrap_or("")
        );
        vec![cover]
    }

    #[test]
    fn the_result_whose_reader_has_a_result_wins_over_a_newer_one() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let memory = memory(root.path());
        let Recall::Reuse { outputs, from, .. } = memory.recall_preferring(&job(), &cover) else {
            panic!("a result is reused");
        };
        assert_eq!(
            (from.as_deref(), &outputs.value),
            (Some("first"), &json!({ "clip_id": "old" }))
        );
    }

    #[test]
    fn without_readers_to_weigh_the_newer_result_wins() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let memory = memory(root.path());
        let Recall::Reuse { from, .. } = memory.recall(&job()) else {
            panic!("a result is reused");
        };
        assert_eq!(from.as_deref(), Some("second"));
    }
}
