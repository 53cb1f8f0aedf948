//! The lock a run holds on its pipeline in a state folder, so that two runs
//! of one pipeline never pay for the same work: the second waits for the
//! first (`--lock-timeout`) or is refused, naming who holds the lock.
//!
//! # Design
//!
//! The rules — who holds the lock, when a holder counts as gone, how it is
//! taken over, how the holder proves it is alive — live here once, in
//! [`acquire`], [`StateLock`] and [`stale`]. They rest on a [`LockStore`]:
//! four conditional operations on one small record per pipeline, the
//! [`Holder`], each version of which carries an opaque *etag*:
//!
//! - [`LockStore::create`]: write the record only if there is none
//!   (put-if-absent);
//! - [`LockStore::replace`]: overwrite it only if its etag is still the one
//!   read (compare-and-swap): the heartbeat, and the takeover of a stale lock;
//! - [`LockStore::delete`]: remove it only if its etag is still the one read:
//!   release and `sonicflow unlock`;
//! - [`LockStore::read`] / [`LockStore::list`]: inspect.
//!
//! Because a takeover or a release is conditional on the etag the taker saw,
//! two processes that both find a stale lock cannot both win: the first
//! replace changes the etag and the second one fails. An object store with
//! conditional writes (`If-None-Match: *` to create, `If-Match: <etag>` to
//! replace or delete) implements the same trait with one request per
//! operation; [`LocalLocks`] implements it with files on a local (or
//! NFS-mounted) disk.
//!
//! # Staleness
//!
//! A holder beats every [`HEARTBEAT`] (a thread of its own, so a busy run
//! cannot starve it). A lock is stale when its holder runs on this host and
//! its process is gone (pid dead, or reused by another process: the start
//! time recorded beside the pid differs), or when its last heartbeat is
//! older than [`STALE_AFTER`], whatever the host. A holder that finds at its
//! heartbeat that its lock was taken calls its `on_lost` hook: the run stops
//! sending new requests.
//!
//! A process killed with `kill -9` leaves its record behind; the next run
//! takes it over with a warning naming the old holder. A run that exits in
//! any other way removes it ([`StateLock`]'s `Drop`, and
//! [`release_held`] before a hard exit).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::timestamp::rfc3339;

/// How often a holder rewrites its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// A lock whose heartbeat is older than this is stale, on any host.
pub const STALE_AFTER: Duration = Duration::from_secs(90);
/// How often a run waiting for a lock looks again.
const RETRY: Duration = Duration::from_millis(200);

/// Who holds a pipeline's lock, as the lock record stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pipeline: String,
    /// The id of the run holding the lock.
    pub run: String,
    /// The holding run's folder.
    pub run_dir: String,
    /// `run` or `resume`.
    pub command: String,
    pub host: String,
    pub pid: u32,
    /// When the process started, in clock ticks since boot (Linux), to tell
    /// the holder from a later process that got the same pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    /// When the lock was taken (RFC 3339).
    pub since: String,
    /// The holder's last heartbeat (RFC 3339).
    pub heartbeat: String,
    /// Tells this holding apart from any other, even by the same process.
    pub token: String,
}

impl Holder {
    /// A holder for this process, taking the lock now.
    pub fn this_process(pipeline: &str, run: &str, run_dir: &Path, command: &str) -> Holder {
        let now = rfc3339(SystemTime::now());
        let pid = std::process::id();
        Holder {
            pipeline: pipeline.to_owned(),
            run: run.to_owned(),
            run_dir: super::absolute(run_dir).display().to_string(),
            command: command.to_owned(),
            host: host_name(),
            pid,
            pid_start: process_start(pid),
            since: now.clone(),
            heartbeat: now,
            token: format!("{pid}-{:016x}", rand::random::<u64>()),
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let doing = if self.command == "resume" {
            "resuming"
        } else {
            "running"
        };
        write!(
            f,
            "run `{}` (pid {} on host `{}`, {doing} since {}, last heartbeat {})",
            self.run, self.pid, self.host, self.since, self.heartbeat
        )
    }
}

/// One version of a lock record: the holder and the etag of that version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub holder: Holder,
    pub etag: String,
}

/// What [`LockStore::create`] found.
#[derive(Debug)]
pub enum Created {
    /// The record is ours.
    Mine(Lock),
    /// Someone holds the lock.
    Held(Lock),
}

/// Why a lock could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot use the lock `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the lock `{}` is not a lock record sonicflow wrote ({source}); if no run of its pipeline is running, delete the file",
        path.display()
    )]
    Decode {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot encode a lock record: {0}")]
    Encode(serde_json::Error),
    /// A request to the state store failed; the text names the store.
    #[error(
        "{0}; check that the state store is reachable and the credentials in the environment are right"
    )]
    Store(String),
}

/// Where the lock records of one state folder live, with the conditional
/// operations the locking rules need (see the module documentation).
pub trait LockStore: fmt::Debug + Send + Sync {
    /// Where `pipeline`'s lock lives, for messages.
    fn location(&self, pipeline: &str) -> String;
    /// The current record of `pipeline`'s lock, if any.
    fn read(&self, pipeline: &str) -> Result<Option<Lock>, LockError>;
    /// Writes `holder` if `pipeline` has no record (put-if-absent).
    fn create(&self, holder: &Holder) -> Result<Created, LockError>;
    /// Overwrites the record with `holder` if its etag is still `etag`;
    /// `None` when it is not (someone else changed or removed it).
    fn replace(&self, etag: &str, holder: &Holder) -> Result<Option<Lock>, LockError>;
    /// Removes `pipeline`'s record if its etag is still `etag`; whether it did.
    fn delete(&self, pipeline: &str, etag: &str) -> Result<bool, LockError>;
    /// Every record in the store.
    fn list(&self) -> Result<Vec<Lock>, LockError>;
}

/// Lock records as files in `<state>/locks/`: `<pipeline>.lock` holds the
/// record as JSON, and its etag is the file's content. Every change is made
/// while holding an exclusive `flock` on `<pipeline>.lock.guard` (a file
/// that is never removed, so every process locks the same one) and is
/// written to a temporary file renamed into place, so a reader sees a whole
/// record or none.
#[derive(Debug, Clone)]
pub struct LocalLocks {
    dir: PathBuf,
}

impl LocalLocks {
    /// The lock records of the state folder `state`.
    pub fn new(state: &Path) -> LocalLocks {
        LocalLocks {
            dir: state.join("locks"),
        }
    }

    fn path(&self, pipeline: &str) -> PathBuf {
        self.dir.join(format!("{}.lock", lock_name(pipeline)))
    }

    fn io(path: &Path) -> impl Fn(std::io::Error) -> LockError + '_ {
        move |source| LockError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// Runs `change` while holding the guard of `pipeline`'s lock.
    fn guarded<T>(
        &self,
        pipeline: &str,
        change: impl FnOnce(&Path) -> Result<T, LockError>,
    ) -> Result<T, LockError> {
        std::fs::create_dir_all(&self.dir).map_err(Self::io(&self.dir))?;
        let path = self.path(pipeline);
        let mut guard_path = path.clone().into_os_string();
        guard_path.push(".guard");
        let guard_path = PathBuf::from(guard_path);
        let guard = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&guard_path)
            .map_err(Self::io(&guard_path))?;
        guard.lock().map_err(Self::io(&guard_path))?;
        let result = change(&path);
        let _ = guard.unlock();
        result
    }

    fn read_file(path: &Path) -> Result<Option<Lock>, LockError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LockError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let holder = serde_json::from_str(&text).map_err(|source| LockError::Decode {
            path: path.to_owned(),
            source,
        })?;
        Ok(Some(Lock { holder, etag: text }))
    }

    /// Writes `holder` to `path` through a temporary file renamed into place.
    fn write_file(path: &Path, holder: &Holder) -> Result<Lock, LockError> {
        let mut text = serde_json::to_string_pretty(holder).map_err(LockError::Encode)?;
        text.push('\n');
        let mut tmp = path.to_owned().into_os_string();
        tmp.push(format!(".{}.tmp", holder.token));
        let tmp = PathBuf::from(tmp);
        let written = File::create(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(source) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(LockError::Io {
                path: path.to_owned(),
                source,
            });
        }
        Ok(Lock {
            holder: holder.clone(),
            etag: text,
        })
    }
}

impl LockStore for LocalLocks {
    fn location(&self, pipeline: &str) -> String {
        self.path(pipeline).display().to_string()
    }

    fn read(&self, pipeline: &str) -> Result<Option<Lock>, LockError> {
        Self::read_file(&self.path(pipeline))
    }

    fn create(&self, holder: &Holder) -> Result<Created, LockError> {
        self.guarded(&holder.pipeline, |path| match Self::read_file(path)? {
            Some(theirs) => Ok(Created::Held(theirs)),
            None => Self::write_file(path, holder).map(Created::Mine),
        })
    }

    fn replace(&self, etag: &str, holder: &Holder) -> Result<Option<Lock>, LockError> {
        self.guarded(&holder.pipeline, |path| match Self::read_file(path)? {
            Some(now) if now.etag == etag => Self::write_file(path, holder).map(Some),
            _ => Ok(None),
        })
    }

    fn delete(&self, pipeline: &str, etag: &str) -> Result<bool, LockError> {
        self.guarded(pipeline, |path| match Self::read_file(path)? {
            Some(now) if now.etag == etag => {
                std::fs::remove_file(path).map_err(Self::io(path))?;
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    fn list(&self) -> Result<Vec<Lock>, LockError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(LockError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut locks = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "lock")
                && let Some(lock) = Self::read_file(&path)?
            {
                locks.push(lock);
            }
        }
        locks.sort_by(|a, b| a.holder.pipeline.cmp(&b.holder.pipeline));
        Ok(locks)
    }
}

/// The file-name-safe name of `pipeline`'s lock record, in any store.
pub fn lock_name(pipeline: &str) -> String {
    let safe = super::safe_name(pipeline);
    if safe == pipeline {
        safe
    } else {
        // Two names that sanitise alike keep locks of their own.
        let digest = crate::report::manifest_sha256(pipeline.as_bytes());
        format!("{safe}-{}", digest.get(..8).unwrap_or(&digest))
    }
}

/// What this host can tell about a holder's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Running,
    Gone,
    /// Another host, or a system without `/proc`.
    Unknown,
}

/// Whether `holder`'s process still runs, as far as this host can tell.
pub fn process_of(holder: &Holder) -> Process {
    if holder.host != host_name() || !Path::new("/proc/self/stat").exists() {
        return Process::Unknown;
    }
    match process_state(holder.pid) {
        None => Process::Gone,
        Some((state, _)) if state == 'Z' || state == 'X' => Process::Gone,
        Some((_, start)) if holder.pid_start.is_some_and(|s| Some(s) != start) => Process::Gone,
        Some(_) => Process::Running,
    }
}

/// Why `holder` no longer holds its lock, if it does not: its process is
/// gone, or its heartbeat is older than [`STALE_AFTER`] at `now`.
pub fn stale(holder: &Holder, process: Process, now: SystemTime) -> Option<String> {
    if process == Process::Gone {
        return Some(format!("process {} is no longer running", holder.pid));
    }
    let beat = humantime::parse_rfc3339(&holder.heartbeat).ok()?;
    let age = now.duration_since(beat).ok()?;
    (age > STALE_AFTER).then(|| {
        format!(
            "its last heartbeat is {}s old (more than {}s)",
            age.as_secs(),
            STALE_AFTER.as_secs()
        )
    })
}

/// The lock was held by a live run for the whole wait.
#[derive(Debug, Clone)]
pub struct Held {
    pub holder: Holder,
    pub location: String,
    /// How long the caller waited for it.
    pub timeout: Duration,
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pipeline `{}` is locked by {}",
            self.holder.pipeline, self.holder
        )?;
        if !self.timeout.is_zero() {
            write!(f, "; waited {}", humantime::format_duration(self.timeout))?;
        }
        write!(f, ", lock file `{}`", self.location)
    }
}

/// Why [`acquire`] did not get the lock.
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    #[error("{0}")]
    Held(Box<Held>),
    #[error(transparent)]
    Store(#[from] LockError),
}

/// What [`acquire`] tells its caller along the way.
pub trait Observer {
    /// The lock is held; the caller waits up to `timeout`.
    fn waiting(&mut self, holder: &Holder, timeout: Duration);
    /// A stale lock was taken over from `old`.
    fn took_over(&mut self, old: &Holder, why: &str);
}

/// Prints what happens on stderr.
#[derive(Debug, Default)]
pub struct Stderr {
    told: bool,
}

impl Observer for Stderr {
    fn waiting(&mut self, holder: &Holder, timeout: Duration) {
        if !std::mem::replace(&mut self.told, true) {
            crate::errln!(
                "waiting up to {} for the lock on `{}` held by {}",
                humantime::format_duration(timeout),
                holder.pipeline,
                holder
            );
        }
    }

    fn took_over(&mut self, old: &Holder, why: &str) {
        crate::errln!(
            "warning: took over the lock on `{}` from {}: {why}",
            old.pipeline,
            old
        );
    }
}

/// Takes `pipeline`'s lock in `store` for the holder `make` builds (called
/// again for every attempt, so a run that waited is named as of when it got
/// the lock). Waits up to `timeout` for a live holder; takes a stale lock over.
pub fn acquire(
    store: Arc<dyn LockStore>,
    timeout: Duration,
    observer: &mut dyn Observer,
    mut make: impl FnMut() -> Holder,
) -> Result<StateLock, AcquireError> {
    let started = std::time::Instant::now();
    loop {
        let me = make();
        let theirs = match store.create(&me)? {
            Created::Mine(lock) => return Ok(StateLock::hold(store, lock)),
            Created::Held(theirs) => theirs,
        };
        if let Some(why) = stale(
            &theirs.holder,
            process_of(&theirs.holder),
            SystemTime::now(),
        ) {
            // Only one taker's replace matches the etag it read.
            if let Some(lock) = store.replace(&theirs.etag, &me)? {
                observer.took_over(&theirs.holder, &why);
                return Ok(StateLock::hold(store, lock));
            }
            continue;
        }
        let waited = started.elapsed();
        if waited >= timeout {
            return Err(AcquireError::Held(Box::new(Held {
                location: store.location(&theirs.holder.pipeline),
                holder: theirs.holder,
                timeout,
            })));
        }
        observer.waiting(&theirs.holder, timeout);
        std::thread::sleep(RETRY.min(timeout - waited));
    }
}

/// Locks held by this process, for [`release_held`].
static HELD: Mutex<Vec<Arc<Shared>>> = Mutex::new(Vec::new());

fn held() -> MutexGuard<'static, Vec<Arc<Shared>>> {
    HELD.lock().unwrap_or_else(|p| p.into_inner())
}

/// Releases every lock this process holds: for an exit that runs no destructors.
pub fn release_held() {
    let all: Vec<Arc<Shared>> = held().drain(..).collect();
    for shared in all {
        shared.release();
    }
}

type OnLost = Box<dyn Fn() + Send>;

#[derive(Debug)]
struct Shared {
    store: Arc<dyn LockStore>,
    pipeline: String,
    /// The record as last written; `None` once released or lost.
    current: Mutex<Option<Lock>>,
    on_lost: Mutex<Option<OnLostHook>>,
}

struct OnLostHook(OnLost);

impl fmt::Debug for OnLostHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnLostHook")
    }
}

impl Shared {
    fn current(&self) -> MutexGuard<'_, Option<Lock>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn release(&self) {
        if let Some(lock) = self.current().take()
            && let Err(e) = self.store.delete(&self.pipeline, &lock.etag)
        {
            crate::errln!("warning: {e}");
        }
    }

    /// Rewrites the heartbeat; on finding the lock taken, calls the hook.
    fn beat(&self, now: SystemTime) {
        let mut current = self.current();
        let Some(lock) = current.as_ref() else {
            return;
        };
        let mut holder = lock.holder.clone();
        holder.heartbeat = rfc3339(now);
        match self.store.replace(&lock.etag, &holder) {
            Ok(Some(new)) => *current = Some(new),
            Ok(None) => {
                *current = None;
                drop(current);
                let now_held = self
                    .store
                    .read(&self.pipeline)
                    .ok()
                    .flatten()
                    .map_or_else(|| "nobody".to_owned(), |l| l.holder.to_string());
                crate::errln!(
                    "warning: this run lost its lock on `{}` (now held by {now_held}); no new requests are sent",
                    self.pipeline
                );
                if let Some(hook) = self
                    .on_lost
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                {
                    (hook.0)();
                }
            }
            Err(e) => crate::errln!("warning: the lock's heartbeat failed: {e}"),
        }
    }
}

/// A held lock: beats while alive, released on drop.
#[derive(Debug)]
pub struct StateLock {
    shared: Arc<Shared>,
    holder: Holder,
    stop: Option<mpsc::Sender<()>>,
    beating: Option<std::thread::JoinHandle<()>>,
}

impl StateLock {
    fn hold(store: Arc<dyn LockStore>, lock: Lock) -> StateLock {
        let holder = lock.holder.clone();
        let shared = Arc::new(Shared {
            store,
            pipeline: holder.pipeline.clone(),
            current: Mutex::new(Some(lock)),
            on_lost: Mutex::new(None),
        });
        held().push(Arc::clone(&shared));
        let (stop, stopped) = mpsc::channel::<()>();
        let beating = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("lock-heartbeat".to_owned())
                .spawn(move || {
                    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(HEARTBEAT)
                    {
                        shared.beat(SystemTime::now());
                    }
                })
                .map_err(|e| crate::errln!("warning: cannot start the lock's heartbeat: {e}"))
                .ok()
        };
        StateLock {
            shared,
            holder,
            stop: Some(stop),
            beating,
        }
    }

    /// The holder as the lock was taken.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// Calls `hook` (once per loss) if a heartbeat finds the lock taken by another.
    pub fn on_lost(&self, hook: impl Fn() + Send + 'static) {
        *self
            .shared
            .on_lost
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(OnLostHook(Box::new(hook)));
    }

    /// Rewrites the heartbeat now (the heartbeat thread does it every [`HEARTBEAT`]).
    pub fn beat(&self) {
        self.shared.beat(SystemTime::now());
    }

    /// Whether this process still holds the lock, as far as it knows.
    pub fn is_held(&self) -> bool {
        self.shared.current().is_some()
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.beating.take() {
            let _ = thread.join();
        }
        self.shared.release();
        held().retain(|s| !Arc::ptr_eq(s, &self.shared));
    }
}

/// This host's name, as holders record it.
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The state letter and start time of process `pid` (Linux `/proc`).
fn process_state(pid: u32) -> Option<(char, Option<u64>)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S ...`: the name may hold spaces and parentheses.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 of the whole line is the 20th after the name.
    let start = fields.get(19).and_then(|s| s.parse().ok());
    Some((state, start))
}

fn process_start(pid: u32) -> Option<u64> {
    process_state(pid).and_then(|(_, start)| start)
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn store(dir: &Path) -> Arc<dyn LockStore> {
        Arc::new(LocalLocks::new(dir))
    }

    fn me(run: &str) -> Holder {
        Holder::this_process("songs", run, Path::new("/s/runs/r"), "run")
    }

    #[derive(Default)]
    struct Seen {
        waited: usize,
        took_over: Vec<String>,
    }

    impl Observer for Seen {
        fn waiting(&mut self, _: &Holder, _: Duration) {
            self.waited += 1;
        }
        fn took_over(&mut self, old: &Holder, why: &str) {
            self.took_over.push(format!("{}: {why}", old.run));
        }
    }

    /// Takes the lock of `songs` in `dir` for `run`, refused at once if held.
    fn take_now(dir: &Path, run: &str) -> Result<StateLock, AcquireError> {
        acquire(store(dir), Duration::ZERO, &mut Seen::default(), || me(run))
    }

    /// A holder on this host whose process has exited (and was reaped).
    fn dead(run: &str) -> Holder {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        Holder { pid, ..me(run) }
    }

    #[test]
    fn a_second_taker_is_refused_with_the_holder_and_gets_it_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = take_now(dir.path(), "first").unwrap();
        let err = take_now(dir.path(), "second").unwrap_err();
        let AcquireError::Held(held) = err else {
            panic!("{err}");
        };
        assert_eq!(held.holder.run, "first");
        assert_eq!(held.holder.pid, std::process::id());
        let text = held.to_string();
        assert!(
            text.starts_with("pipeline `songs` is locked by run `first` (pid "),
            "{text}"
        );
        drop(first);
        assert_eq!(store(dir.path()).read("songs").unwrap(), None);
        let second = take_now(dir.path(), "second").unwrap();
        assert_eq!(second.holder().run, "second");
    }

    #[test]
    fn a_waiting_taker_gets_the_lock_when_the_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = take_now(dir.path(), "first").unwrap();
        let (tx, rx) = mpsc::channel();
        let path = dir.path().to_owned();
        let waiter = std::thread::spawn(move || {
            struct Tell(mpsc::Sender<()>);
            impl Observer for Tell {
                fn waiting(&mut self, _: &Holder, _: Duration) {
                    let _ = self.0.send(());
                }
                fn took_over(&mut self, _: &Holder, _: &str) {}
            }
            acquire(store(&path), Duration::from_secs(60), &mut Tell(tx), || {
                me("second")
            })
            .map(|l| l.holder().run.clone())
        });
        rx.recv().unwrap();
        drop(first);
        assert_eq!(waiter.join().unwrap().unwrap(), "second");
    }

    #[test]
    fn a_lock_whose_process_is_gone_is_taken_over_with_the_old_holder_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let Created::Mine(_) = s.create(&dead("crashed")).unwrap() else {
            panic!("the folder is empty");
        };
        let mut seen = Seen::default();
        let lock = acquire(Arc::clone(&s), Duration::ZERO, &mut seen, || me("next")).unwrap();
        assert_eq!(lock.holder().run, "next");
        assert_eq!(seen.took_over.len(), 1);
        assert!(
            seen.took_over[0].starts_with("crashed: process "),
            "{:?}",
            seen.took_over
        );
        assert_eq!(s.read("songs").unwrap().unwrap().holder.run, "next");
    }

    #[test]
    fn staleness_is_a_dead_process_or_an_old_heartbeat() {
        let now = SystemTime::now();
        let at = |ago: u64| rfc3339(now - Duration::from_secs(ago));
        let holder = |ago| Holder {
            heartbeat: at(ago),
            ..me("r")
        };
        let cases = [
            (holder(0), Process::Running, false),
            (holder(0), Process::Unknown, false),
            (holder(STALE_AFTER.as_secs() - 1), Process::Unknown, false),
            (holder(STALE_AFTER.as_secs() + 1), Process::Unknown, true),
            (holder(STALE_AFTER.as_secs() + 1), Process::Running, true),
            (holder(0), Process::Gone, true),
        ];
        for (h, process, is_stale) in cases {
            assert_eq!(
                stale(&h, process, now).is_some(),
                is_stale,
                "{} {process:?}",
                h.heartbeat
            );
        }
        assert_eq!(process_of(&me("r")), Process::Running);
        assert_eq!(process_of(&dead("r")), Process::Gone);
        let reused = Holder {
            pid_start: me("r").pid_start.map(|s| s + 1),
            ..me("r")
        };
        assert_eq!(
            process_of(&reused),
            Process::Gone,
            "a pid taken by a later process"
        );
        let elsewhere = Holder {
            host: "another-host".into(),
            ..dead("r")
        };
        assert_eq!(process_of(&elsewhere), Process::Unknown);
    }

    #[test]
    fn of_many_threads_taking_over_one_stale_lock_exactly_one_wins() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let s = store(dir.path());
            s.create(&dead("crashed")).unwrap();
            let winners = Arc::new(AtomicUsize::new(0));
            let barrier = Arc::new(Barrier::new(8));
            let takers: Vec<_> = (0..8)
                .map(|i| {
                    let (s, winners, barrier) =
                        (Arc::clone(&s), Arc::clone(&winners), Arc::clone(&barrier));
                    std::thread::spawn(move || {
                        barrier.wait();
                        let got = acquire(s, Duration::ZERO, &mut Seen::default(), || {
                            me(&format!("t{i}"))
                        });
                        if let Ok(lock) = got {
                            winners.fetch_add(1, Ordering::SeqCst);
                            // Hold it until every taker has tried.
                            std::mem::forget(lock);
                        }
                    })
                })
                .collect();
            for t in takers {
                t.join().unwrap();
            }
            assert_eq!(winners.load(Ordering::SeqCst), 1);
        }
    }

    #[test]
    fn the_heartbeat_moves_forward_and_a_taken_lock_calls_the_hook() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let lock = acquire(Arc::clone(&s), Duration::ZERO, &mut Seen::default(), || {
            Holder {
                heartbeat: "2026-01-01T00:00:00.000Z".into(),
                ..me("r")
            }
        })
        .unwrap();
        lock.beat();
        let beat = s.read("songs").unwrap().unwrap();
        assert!(beat.holder.heartbeat.as_str() > "2026-01-01T00:00:00.000Z");
        assert_eq!(beat.holder.token, lock.holder().token);

        // `unlock --force` and a new holder: the next heartbeat finds out.
        assert!(s.delete("songs", &beat.etag).unwrap());
        s.create(&me("other")).unwrap();
        let lost = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&lost);
        lock.on_lost(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        lock.beat();
        assert_eq!(lost.load(Ordering::SeqCst), 1);
        assert!(!lock.is_held());
        drop(lock);
        assert_eq!(
            s.read("songs").unwrap().unwrap().holder.run,
            "other",
            "dropping a lost lock leaves the new holder's alone"
        );
    }

    #[test]
    fn of_many_threads_replacing_the_stale_record_they_all_read_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.create(&dead("crashed")).unwrap();
        let barrier = Arc::new(Barrier::new(8));
        let takers: Vec<_> = (0..8)
            .map(|i| {
                let (s, barrier) = (Arc::clone(&s), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    let seen = s.read("songs").unwrap().unwrap();
                    // Every taker has read the stale record before any replaces it.
                    barrier.wait();
                    s.replace(&seen.etag, &me(&format!("t{i}"))).unwrap()
                })
            })
            .collect();
        let won: Vec<Lock> = takers
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(won.len(), 1);
        assert_eq!(s.read("songs").unwrap().as_ref(), won.first());
    }

    #[test]
    fn conditional_writes_fail_on_a_changed_etag() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalLocks::new(dir.path());
        let Created::Mine(first) = s.create(&me("a")).unwrap() else {
            panic!("empty");
        };
        let Created::Held(seen) = s.create(&me("b")).unwrap() else {
            panic!("held");
        };
        assert_eq!(seen, first);
        let second = s.replace(&first.etag, &me("c")).unwrap().unwrap();
        assert_eq!(s.replace(&first.etag, &me("d")).unwrap(), None);
        assert!(!s.delete("songs", &first.etag).unwrap());
        assert_eq!(s.list().unwrap(), vec![second.clone()]);
        assert!(s.delete("songs", &second.etag).unwrap());
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn names_that_sanitise_alike_lock_apart() {
        let s = LocalLocks::new(Path::new("/s"));
        assert_eq!(s.location("songs"), "/s/locks/songs.lock");
        assert_ne!(s.location("a b"), s.location("a_b"));
    }
}
