//! [`RunMemory`]: the engine's memory over the state folder. It answers
//! "has this request been paid for already?" and writes the journal and the
//! index as the run goes.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::entry::{Entry, IndexEntry, Outcome, RunHeader, RunRef};
use super::file::LineLog;
use super::history::{InstanceLog, Known, Seen};
use super::{JOURNAL, StateDir, absolute};
use crate::engine::{Earlier, ErrorKind, Job, Memory, Outputs, Recall, Record, SavedFile, TaskRef};
use crate::timestamp::rfc3339;

/// What the user allows a run to take from the past.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Reuse results of earlier runs (`--no-reuse` turns it off).
    pub reuse: bool,
    /// Step ids to pay for again even when a result exists (`--force`).
    pub force: HashSet<String>,
    /// Send again requests whose earlier answer never came (`--resend-in-doubt`).
    pub resend_in_doubt: bool,
    /// How long remote URLs stay valid; older results are reused only with their files.
    pub retention: Duration,
    pub now: SystemTime,
    /// Whether other runs (the index, unfinished runs) count at all; off for
    /// a throwaway sandbox, whose answers mean nothing to later runs. The
    /// run's own journal always counts.
    pub others: bool,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            reuse: true,
            force: HashSet::new(),
            resend_in_doubt: false,
            retention: Duration::from_secs(14 * 24 * 3600),
            now: SystemTime::now(),
            others: true,
        }
    }
}

/// The run this memory writes for.
#[derive(Debug)]
struct Writing {
    api: Option<String>,
    id: String,
    pipeline: String,
    dir: PathBuf,
    journal: LineLog,
    index: LineLog,
}

#[derive(Debug, Default)]
struct Inner {
    writing: Option<Writing>,
    crash: Option<CrashPoint>,
    /// Earlier requests already taken by an instance of this run: `(run, inst)`.
    claimed: HashSet<(String, String)>,
    /// Tasks accepted and not yet finished, by instance.
    tasks: HashMap<String, TaskRef>,
}

/// The state folder as the engine's memory.
#[derive(Debug)]
pub struct RunMemory {
    known: Known,
    policy: Policy,
    inner: Mutex<Inner>,
}

/// A candidate answer from the past, ranked: a result beats a task to
/// poll, which beats a request in doubt.
enum Found {
    Reuse(Outputs, Option<String>, u64),
    Attach(TaskRef, Option<String>, u64),
    InDoubt(Option<String>, String),
}

impl RunMemory {
    /// Memory that only answers (for `plan`): nothing is written.
    pub fn read_only(known: Known, policy: Policy) -> RunMemory {
        RunMemory {
            known,
            policy,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Starts a new run in `dir`: creates its journal (with `header`) and
    /// registers it in the state folder.
    pub fn start(
        state: &StateDir,
        dir: &Path,
        header: &RunHeader,
        known: Known,
        policy: Policy,
    ) -> Result<RunMemory, String> {
        state.ensure()?;
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the run folder `{}`: {e}", dir.display()))?;
        let path = dir.join(JOURNAL);
        if path.exists() {
            return Err(format!(
                "`{}` already holds a run; resume it with `sonicflow run --resume {}`, or choose another `--out`",
                dir.display(),
                dir.display()
            ));
        }
        let mut journal = LineLog::open(&path, true)?;
        journal.append(&Entry::Run(header.clone()))?;
        let dir = absolute(dir);
        state.register(&RunRef {
            id: header.id.clone(),
            pipeline: header.pipeline.clone(),
            dir: dir.display().to_string(),
            manifest: header.manifest.clone(),
            started_at: header.started_at.clone(),
        })?;
        let index = LineLog::open(&state.index_path(), false)?;
        Ok(RunMemory::writing(
            known,
            policy,
            Writing {
                api: header.api.clone(),
                id: header.id.clone(),
                pipeline: header.pipeline.clone(),
                dir,
                journal,
                index,
            },
        ))
    }

    /// Takes up the run whose journal `known.own` holds.
    pub fn resume(state: &StateDir, known: Known, policy: Policy) -> Result<RunMemory, String> {
        let Some(own) = known.own.as_ref() else {
            return Err("no run to resume".to_owned());
        };
        let dir = absolute(&own.dir);
        let mut journal = LineLog::open(&dir.join(JOURNAL), true)?;
        journal.append(&Entry::Resumed {
            at: rfc3339(SystemTime::now()),
        })?;
        state.ensure()?;
        let index = LineLog::open(&state.index_path(), false)?;
        let writing = Writing {
            api: own.header.api.clone(),
            id: own.id().to_owned(),
            pipeline: own.header.pipeline.clone(),
            dir,
            journal,
            index,
        };
        Ok(RunMemory::writing(known, policy, writing))
    }

    fn writing(known: Known, policy: Policy, writing: Writing) -> RunMemory {
        RunMemory {
            known,
            policy,
            inner: Mutex::new(Inner {
                writing: Some(writing),
                crash: CrashPoint::from_env(),
                ..Inner::default()
            }),
        }
    }

    /// Marks the run as ended in its journal.
    pub fn finish(&self, status: &str) -> Result<(), String> {
        let mut inner = self.lock();
        match inner.writing.as_mut() {
            Some(w) => w.journal.append(&Entry::Finished {
                status: status.to_owned(),
                at: rfc3339(SystemTime::now()),
            }),
            None => Ok(()),
        }
    }

    pub fn known(&self) -> &Known {
        &self.known
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves the state whole; a panic elsewhere cannot tear it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Outputs of an earlier success, if they may still be used: remote URLs
    /// past the retention count only when their files were downloaded (they
    /// are brought into this run's folder).
    fn usable(&self, inner: &Inner, dir: &Path, at: &str, outputs: &Outputs) -> Option<Outputs> {
        let age = humantime::parse_rfc3339_weak(at)
            .ok()
            .and_then(|t| self.policy.now.duration_since(t).ok())
            .unwrap_or_default();
        let expired = age > self.policy.retention && has_url(&outputs.value);
        let target = inner.writing.as_ref().map(|w| w.dir.as_path());
        let files: Vec<SavedFile> = outputs
            .files
            .iter()
            .filter(|f| bring(dir, target, &f.path))
            .cloned()
            .collect();
        if expired && (outputs.files.is_empty() || files.len() < outputs.files.len()) {
            return None;
        }
        Some(Outputs {
            value: outputs.value.clone(),
            files,
        })
    }

    fn find(&self, inner: &Inner, job: &Job, inst: &str) -> Option<((String, String), Found)> {
        let may_reuse = self.policy.reuse && !self.policy.force.contains(&job.id.step_id);
        let hash = job.request_hash.as_str();
        let mut found: Vec<Candidate> = Vec::new();
        let claimed = &inner.claimed;
        // This run's own journal comes first, and only for the same instance.
        if let Some(own) = &self.known.own
            && let Some(i) = own.instances.get(inst)
            && i.hash == hash
        {
            let key = (own.id().to_owned(), inst.to_owned());
            let own_run = Journaled {
                dir: &own.dir,
                from: None,
                credits: i.credits,
                ranks: [6, 5, 4],
            };
            if let Some((rank, f)) = self.answer_in(inner, i, own_run, may_reuse, false) {
                offer(&mut found, claimed, rank, key, f);
            }
        }
        let own_found = !found.is_empty();
        // Then other runs: those that never finished, and the index.
        let same = |i: &str| u8::from(i == inst);
        let others = if own_found || !self.policy.others {
            &[][..]
        } else {
            &self.known.unfinished[..]
        };
        for log in others {
            for (k, i) in log.instances.iter().filter(|(_, i)| i.hash == hash) {
                let s = same(k);
                let other_run = Journaled {
                    dir: &log.dir,
                    from: Some(log.id().to_owned()),
                    credits: 0,
                    ranks: [4 + s, 2 + s, s],
                };
                let settled = self.settled(&log.header.pipeline, k, hash, &i.at);
                if let Some((rank, f)) = self.answer_in(inner, i, other_run, may_reuse, settled) {
                    offer(
                        &mut found,
                        claimed,
                        rank,
                        (log.id().to_owned(), k.clone()),
                        f,
                    );
                }
            }
        }
        for e in self
            .known
            .indexed(hash)
            .filter(|_| !own_found && self.policy.others)
        {
            let key = (e.run.clone(), e.inst.clone());
            let from = Some(e.run.clone());
            let s = same(&e.inst);
            match (e.outcome, &e.outputs, &e.task) {
                (Outcome::Succeeded, Some(outputs), _) if may_reuse => {
                    if let Some(o) = self.usable(inner, Path::new(&e.dir), &e.at, outputs) {
                        offer(&mut found, claimed, 4 + s, key, Found::Reuse(o, from, 0));
                    }
                }
                (Outcome::Unfinished, _, Some(t)) => {
                    offer(
                        &mut found,
                        claimed,
                        2 + s,
                        key,
                        Found::Attach(t.clone(), from, 0),
                    );
                }
                (Outcome::InDoubt, ..)
                    if !self.policy.resend_in_doubt
                        && !self.settled(&e.pipeline, &e.inst, hash, &e.at) =>
                {
                    offer(
                        &mut found,
                        claimed,
                        s,
                        key,
                        Found::InDoubt(from, e.at.clone()),
                    );
                }
                _ => {}
            }
        }
        // The best rank wins; among equals, the newest.
        let mut best: Option<Candidate> = None;
        for candidate in found {
            if best.as_ref().is_none_or(|(r, ..)| candidate.0 >= *r) {
                best = Some(candidate);
            }
        }
        best.map(|(_, k, f)| (k, f))
    }

    /// What an instance's journal offers a new request: its result, its
    /// task to poll, or a send in doubt (unless resending is allowed or a
    /// later answer `settled` it), each with its rank from `run.ranks`.
    fn answer_in(
        &self,
        inner: &Inner,
        i: &InstanceLog,
        run: Journaled<'_>,
        may_reuse: bool,
        settled: bool,
    ) -> Option<(u8, Found)> {
        let [reuse, attach, doubt] = run.ranks;
        match &i.seen {
            Seen::Succeeded { outputs, .. } if may_reuse => {
                let o = self.usable(inner, run.dir, &i.at, outputs)?;
                Some((reuse, Found::Reuse(o, run.from, run.credits)))
            }
            Seen::Accepted { task: Some(t) } | Seen::Failed { task: Some(t), .. } => {
                Some((attach, Found::Attach(t.clone(), run.from, run.credits)))
            }
            Seen::Sent { .. }
            | Seen::Accepted { task: None }
            | Seen::Failed {
                kind: ErrorKind::InDoubt,
                ..
            } if !self.policy.resend_in_doubt && !settled => {
                Some((doubt, Found::InDoubt(run.from, i.at.clone())))
            }
            _ => None,
        }
    }

    /// Whether a send left in doubt at `at` by another run was answered by
    /// a later attempt at the same request.
    fn settled(&self, pipeline: &str, inst: &str, hash: &str, at: &str) -> bool {
        self.known
            .settled(pipeline, inst, hash)
            .is_some_and(|later| later > at)
    }

    fn write(
        &self,
        inner: &mut Inner,
        entry: &Entry,
        index: Option<IndexEntry>,
    ) -> Result<(), String> {
        let Some(w) = inner.writing.as_mut() else {
            return Ok(());
        };
        w.journal.append(entry)?;
        if let Some(e) = index.filter(|_| self.policy.others) {
            w.index.append(&e)?;
        }
        Ok(())
    }
}

impl Memory for RunMemory {
    fn recall(&self, job: &Job) -> Recall {
        let inst = job.id.to_string();
        let mut inner = self.lock();
        let Some((key, found)) = self.find(&inner, job, &inst) else {
            return Recall::New;
        };
        inner.claimed.insert(key);
        match found {
            Found::Reuse(outputs, from, credits) => Recall::Reuse {
                outputs,
                from,
                credits,
            },
            Found::Attach(task, from, credits) => {
                inner.tasks.insert(inst, task.clone());
                Recall::Attach {
                    task,
                    from,
                    credits,
                }
            }
            Found::InDoubt(from, since) => Recall::InDoubt { from, since },
        }
    }

    fn earlier(&self, inst: &str) -> Option<Earlier> {
        self.known.previous(inst).map(|p| Earlier {
            run: p.run,
            hash: p.hash,
            fields: p.fields,
            succeeded: p.outcome == Outcome::Succeeded,
            failed: p.outcome == Outcome::Failed,
        })
    }

    fn record(&self, record: Record<'_>) -> Result<(), String> {
        let at = rfc3339(SystemTime::now());
        let mut inner = self.lock();
        let inner = &mut *inner;
        let kind = match record {
            Record::Intent { .. } => "intent",
            Record::Accepted { .. } => "accepted",
            Record::Released { .. } => "released",
            Record::Succeeded { .. } => "succeeded",
            Record::Failed { .. } => "failed",
        };
        if let Some(crash) = inner.crash.as_mut() {
            crash.reached(kind, false);
        }
        let written = self.write_record(inner, record, at);
        if let Some(crash) = inner.crash.as_mut() {
            crash.reached(kind, true);
        }
        written
    }
}

impl RunMemory {
    fn write_record(
        &self,
        inner: &mut Inner,
        record: Record<'_>,
        at: String,
    ) -> Result<(), String> {
        match record {
            Record::Intent { job } => {
                let entry = Entry::Intent {
                    inst: job.id.to_string(),
                    hash: job.request_hash.clone(),
                    attempt: job.attempt,
                    fields: job.fields.clone(),
                    at,
                };
                self.write(inner, &entry, None)
            }
            Record::Accepted { job, task, credits } => {
                let inst = job.id.to_string();
                if let Some(t) = task {
                    inner.tasks.insert(inst.clone(), t.clone());
                }
                let entry = Entry::Accepted {
                    inst,
                    hash: job.request_hash.clone(),
                    attempt: job.attempt,
                    task: task.cloned(),
                    credits,
                    at,
                };
                self.write(inner, &entry, None)
            }
            Record::Released {
                job,
                error,
                refunded,
            } => {
                let inst = job.id.to_string();
                inner.tasks.remove(&inst);
                let entry = Entry::Released {
                    inst,
                    hash: job.request_hash.clone(),
                    attempt: job.attempt,
                    kind: error.kind,
                    refunded,
                    at,
                };
                self.write(inner, &entry, None)
            }
            // This run's own earlier result, taken up on resume: already journaled.
            Record::Succeeded {
                reused_from: Some(""),
                ..
            } => Ok(()),
            Record::Succeeded {
                job,
                outputs,
                reused_from,
                credits,
            } => {
                let inst = job.id.to_string();
                inner.tasks.remove(&inst);
                let index = match (reused_from, inner.writing.as_ref()) {
                    (None, Some(w)) => w.api.clone().map(|api| IndexEntry {
                        api,
                        pipeline: w.pipeline.clone(),
                        run: w.id.clone(),
                        dir: w.dir.display().to_string(),
                        inst: inst.clone(),
                        hash: job.request_hash.clone(),
                        outcome: Outcome::Succeeded,
                        fields: job.fields.clone(),
                        outputs: Some(outputs.clone()),
                        task: None,
                        error: None,
                        at: at.clone(),
                    }),
                    _ => None,
                };
                let entry = Entry::Succeeded {
                    inst,
                    hash: job.request_hash.clone(),
                    fields: job.fields.clone(),
                    outputs: outputs.clone(),
                    reused_from: reused_from.map(str::to_owned),
                    credits,
                    at,
                };
                self.write(inner, &entry, index)
            }
            Record::Failed { job, error } => {
                let inst = job.id.to_string();
                let task = inner.tasks.remove(&inst);
                let outcome = match (error.kind, &task) {
                    (ErrorKind::InDoubt, _) => Outcome::InDoubt,
                    (_, Some(_)) => Outcome::Unfinished,
                    _ => Outcome::Failed,
                };
                // A local failure with no task (say, the journal could not
                // take the intent) says nothing about the request itself.
                let local = error.kind == ErrorKind::Local && task.is_none();
                let index = inner.writing.as_ref().filter(|_| !local).and_then(|w| {
                    Some(IndexEntry {
                        api: w.api.clone()?,
                        pipeline: w.pipeline.clone(),
                        run: w.id.clone(),
                        dir: w.dir.display().to_string(),
                        inst: inst.clone(),
                        hash: job.request_hash.clone(),
                        outcome,
                        fields: job.fields.clone(),
                        outputs: None,
                        task,
                        error: Some(error.message.clone()),
                        at: at.clone(),
                    })
                });
                let entry = Entry::Failed {
                    inst,
                    hash: job.request_hash.clone(),
                    fields: job.fields.clone(),
                    kind: error.kind,
                    message: error.message.clone(),
                    charged: error.charged,
                    at,
                };
                self.write(inner, &entry, index)
            }
        }
    }
}

type Candidate = (u8, (String, String), Found);

/// A run's journal as a source of answers: where its files are, its name
/// (`None`: the run being resumed), the credits an answer carries, and the
/// ranks of a result, a task and a send in doubt.
struct Journaled<'a> {
    dir: &'a Path,
    from: Option<String>,
    credits: u64,
    ranks: [u8; 3],
}

/// A deliberate crash for testing resume: `SONICFLOW_CRASH_AT=before:accepted:3`
/// aborts the process (like `kill -9`: no cleanup, no flushing) just before
/// the third `accepted` record is written, i.e. after that request was sent
/// and answered but before the answer is durable. `after:KIND:N` aborts just
/// after the record is synced. KIND is `intent`, `accepted`, `released`,
/// `succeeded` or `failed`.
#[derive(Debug)]
struct CrashPoint {
    after: bool,
    kind: String,
    countdown: u32,
}

impl CrashPoint {
    fn from_env() -> Option<CrashPoint> {
        let spec = std::env::var("SONICFLOW_CRASH_AT").ok()?;
        let mut parts = spec.split(':');
        let after = match parts.next()? {
            "before" => false,
            "after" => true,
            _ => return None,
        };
        let kind = parts.next()?.to_owned();
        let countdown = parts.next().map_or(Some(1), |n| n.parse().ok())?;
        Some(CrashPoint {
            after,
            kind,
            countdown,
        })
    }

    fn reached(&mut self, kind: &str, after: bool) {
        if self.after != after || self.kind != kind {
            return;
        }
        self.countdown = self.countdown.saturating_sub(1);
        if self.countdown == 0 {
            std::process::abort();
        }
    }
}

/// Adds a candidate unless an instance of this run already took it.
fn offer(
    found: &mut Vec<Candidate>,
    claimed: &HashSet<(String, String)>,
    rank: u8,
    key: (String, String),
    f: Found,
) {
    if !claimed.contains(&key) {
        found.push((rank, key, f));
    }
}

/// Whether an output holds a remote URL (which expires).
fn has_url(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.starts_with("http://") || s.starts_with("https://"),
        serde_json::Value::Array(items) => items.iter().any(has_url),
        serde_json::Value::Object(map) => map.values().any(has_url),
        _ => false,
    }
}

/// Makes the downloaded file `rel` of the run in `from` available in `to`
/// (a link, else a copy); with no `to`, only checks that it exists. A path
/// that would leave either folder is refused.
fn bring(from: &Path, to: Option<&Path>, rel: &str) -> bool {
    let rel = Path::new(rel);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return false;
    }
    let src = from.join(rel);
    if !src.is_file() {
        return false;
    }
    let Some(to) = to else {
        return true;
    };
    let dst = to.join(rel);
    if dst == src || dst.is_file() {
        return true;
    }
    if let Some(parent) = dst.parent()
        && std::fs::create_dir_all(parent).is_err()
    {
        return false;
    }
    std::fs::hard_link(&src, &dst).is_ok() || std::fs::copy(&src, &dst).is_ok()
}
