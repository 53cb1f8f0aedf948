//! [`RunMemory`]: the engine's memory over the state folder. It answers
//! "has this request been paid for already?" and writes the journal and the
//! index as the run goes.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::claims::{Claims, Standing};
use super::crash::CrashPoint;
use super::entry::{Entry, Outcome, RunHeader, RunRef};
use super::error::JournalError;
use super::file::LineLog;
use super::find::{Key, Search};
use super::known::Known;
use super::policy::Policy;
use super::{JOURNAL, StateDir, absolute};
use crate::engine::{Account, Dependents, Earlier, Job, Memory, Recall, Record, Share, TaskRef};
use crate::timestamp::rfc3339;

/// The run this memory writes for.
#[derive(Debug)]
pub(super) struct Writing {
    pub(super) api: Option<String>,
    pub(super) id: String,
    pub(super) pipeline: String,
    pub(super) dir: PathBuf,
    pub(super) journal: LineLog,
    pub(super) index: LineLog,
}

#[derive(Debug, Default)]
pub(super) struct Inner {
    pub(super) writing: Option<Writing>,
    crash: Option<CrashPoint>,
    /// Earlier requests already taken by an instance of this run: `(run, inst)`.
    claimed: HashSet<Key>,
    /// Tasks accepted and not yet finished, by instance.
    pub(super) tasks: HashMap<String, TaskRef>,
}

/// The state folder as the engine's memory.
#[derive(Debug)]
pub struct RunMemory {
    known: Known,
    pub(super) policy: Policy,
    inner: Mutex<Inner>,
    /// Runs sharing the state folder (shards) pay for a request once.
    shared: Option<Shared>,
}

/// What a run sharing its state folder with others needs to pay for a
/// request only once among them.
#[derive(Debug, Clone)]
pub struct Shared {
    pub state: StateDir,
    pub claims: Claims,
    /// How often a waiting instance looks whether the paying run is done.
    pub interval: Duration,
}

impl RunMemory {
    /// Memory that only answers (for `plan`): nothing is written.
    pub fn read_only(known: Known, policy: Policy) -> RunMemory {
        RunMemory {
            known,
            policy,
            inner: Mutex::new(Inner::default()),
            shared: None,
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
    ) -> Result<RunMemory, JournalError> {
        state.ensure()?;
        std::fs::create_dir_all(dir).map_err(|source| JournalError::CreateRunDir {
            dir: dir.to_owned(),
            source,
        })?;
        let path = dir.join(JOURNAL);
        if path.exists() {
            return Err(JournalError::AlreadyHoldsRun {
                dir: dir.to_owned(),
            });
        }
        let mut journal = state.open_journal(&path, &header.id)?;
        journal.append(&Entry::Run(header.clone()))?;
        let dir = absolute(dir);
        state.register(&RunRef {
            id: header.id.clone(),
            pipeline: header.pipeline.clone(),
            dir: dir.display().to_string(),
            manifest: header.manifest.clone(),
            started_at: header.started_at.clone(),
            group: header.group.clone(),
            shard: header.shard,
        })?;
        let index = state.open_index(&header.id)?;
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
    pub fn resume(
        state: &StateDir,
        known: Known,
        policy: Policy,
    ) -> Result<RunMemory, JournalError> {
        let Some(own) = known.own.as_ref() else {
            return Err(JournalError::NothingToResume);
        };
        let dir = absolute(&own.dir);
        let mut journal = state.open_journal(&dir.join(JOURNAL), own.id())?;
        journal.append(&Entry::Resumed {
            at: rfc3339(SystemTime::now()),
        })?;
        state.ensure()?;
        let index = state.open_index(own.id())?;
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
            shared: None,
        }
    }

    /// Shares the paying for requests with the other runs of `shared`'s
    /// state folder: a request another of them claimed is waited for.
    pub fn with_shared(mut self, shared: Shared) -> RunMemory {
        self.shared = Some(shared);
        self
    }

    /// This run's id, once it writes.
    pub fn run_id(&self) -> Option<String> {
        self.lock().writing.as_ref().map(|w| w.id.clone())
    }

    /// The best earlier answer to `job` in the shared state as it is now
    /// (not only as it was when the run began); files come into `target`.
    fn search_now(
        &self,
        inner: &Inner,
        job: &Job,
        target: Option<&Path>,
    ) -> Option<(super::find::Key, Recall)> {
        let shared = self.shared.as_ref()?;
        let writing = inner.writing.as_ref()?;
        // Another machine's answers reach a bucket's working copy only
        // when it is brought up to date.
        if let Err(e) = shared.state.hydrate() {
            crate::errln!("warning: {e}; looking for the answer in what the local copy knows");
        }
        let known = Known::load(
            &shared.state,
            &self.known.pipeline,
            writing.api.as_deref(),
            None,
        )
        .without_run(&writing.dir);
        let inst = job.id.to_string();
        Search::new(&known, &self.policy, &inner.claimed, job, &inst).best(target)
    }

    /// A wait until the holder of `hash`'s claim is done with it (answered
    /// or gone). It sleeps on the runtime's timer and reads the store on a
    /// blocking thread: no worker of the run is held up.
    fn wait_for(shared: &Shared, hash: &str, holder: super::claims::Claim) -> Share {
        let claims = shared.claims.clone();
        let interval = shared.interval;
        let hash = hash.to_owned();
        Share::Wait(Box::pin(async move {
            loop {
                tokio::time::sleep(interval).await;
                let (c, h, who) = (claims.clone(), hash.clone(), holder.clone());
                match tokio::task::spawn_blocking(move || c.done_with(&h, &who)).await {
                    Ok(Ok(false)) => {}
                    // Done, or the store cannot tell: the run looks again.
                    _ => return,
                }
            }
        }))
    }

    /// Marks the run as ended in its journal, with how it ended and what
    /// it was charged over all its processes.
    pub fn finish(
        &self,
        status: &str,
        outcome: &str,
        credits: Account,
        needed_cap: Option<u64>,
    ) -> Result<(), JournalError> {
        let mut inner = self.lock();
        match inner.writing.as_mut() {
            Some(w) => w.journal.append(&Entry::Finished {
                status: status.to_owned(),
                outcome: Some(outcome.to_owned()),
                credits: Some(credits),
                needed_cap,
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
}

/// Instance `inst` takes the earlier request `key` answers: no other
/// instance of the run may, and a task it attaches to is this run's to follow.
fn take(inner: &mut Inner, inst: &str, (key, recall): (super::find::Key, Recall)) -> Recall {
    inner.claimed.insert(key);
    if let Recall::Attach { task, .. } = &recall {
        inner.tasks.insert(inst.to_owned(), task.clone());
    }
    recall
}

impl Memory for RunMemory {
    fn recall(&self, job: &Job) -> Recall {
        self.recall_preferring(job, &|_| Vec::new())
    }

    fn recall_preferring(&self, job: &Job, dependents: &Dependents<'_>) -> Recall {
        let inst = job.id.to_string();
        let mut inner = self.lock();
        let target = inner.writing.as_ref().map(|w| w.dir.as_path());
        let search = Search::new(&self.known, &self.policy, &inner.claimed, job, &inst)
            .preferring(dependents);
        let Some(found) = search.best(target) else {
            return Recall::New;
        };
        take(&mut inner, &inst, found)
    }

    fn share(&self, job: &Job) -> Share {
        let Some(shared) = &self.shared else {
            return Share::Pay;
        };
        let inst = job.id.to_string();
        let hash = &job.request_hash;
        let mut standing = shared.claims.claim(hash, &inst);
        if let Ok(Standing::Settled { generation, .. }) = &standing {
            // What the holder left (a result, a task, a send in doubt) comes
            // first; only when nothing there will do does this run pay.
            let inner = self.lock();
            let target = inner.writing.as_ref().map(|w| w.dir.clone());
            let found = self.search_now(&inner, job, target.as_deref()).is_some();
            drop(inner);
            if found {
                return Share::Wait(Box::pin(std::future::ready(())));
            }
            standing = shared.claims.take_over(hash, *generation, &inst);
        }
        match standing {
            Ok(Standing::Mine) => Share::Pay,
            Ok(Standing::Theirs(holder)) => RunMemory::wait_for(shared, hash, holder),
            // Someone else took it over in between and is done already.
            Ok(Standing::Settled { holder, .. }) => RunMemory::wait_for(shared, hash, holder),
            Err(e) => {
                crate::errln!(
                    "warning: cannot tell whether another shard pays for `{inst}` ({e}); this run pays for it"
                );
                Share::Pay
            }
        }
    }

    fn recall_again(&self, job: &Job) -> Recall {
        let mut inner = self.lock();
        let target = inner.writing.as_ref().map(|w| w.dir.clone());
        let Some(found) = self.search_now(&inner, job, target.as_deref()) else {
            return Recall::New;
        };
        take(&mut inner, &job.id.to_string(), found)
    }

    fn spent(&self) -> Account {
        self.known
            .own
            .as_ref()
            .map(|o| o.credits)
            .unwrap_or_default()
    }

    fn observed(&self) -> Vec<crate::engine::observe::Window> {
        self.known
            .own
            .as_ref()
            .map(|o| o.observed.clone())
            .unwrap_or_default()
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
            Record::Observed { .. } => "observed",
        };
        if let Some(crash) = inner.crash.as_mut() {
            crash.reached(kind, false);
        }
        let written = self.write_record(inner, record, at);
        if let Some(crash) = inner.crash.as_mut() {
            crash.reached(kind, true);
        }
        // The engine knows nothing of the journal; it only reports the message.
        written.map_err(|e| e.to_string())
    }
}
