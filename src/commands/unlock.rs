//! `sonicflow unlock RUN`: remove a pipeline lock that a run left behind,
//! when sonicflow cannot tell by itself that the run is gone (it died on
//! another host sharing the state folder, say).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::exit;
use crate::journal::lock::{self, Lock, Process};
use crate::journal::{RunLog, StateDir};

#[derive(Debug, clap::Args)]
pub struct UnlockArgs {
    /// The id of the run holding the lock (as `run` prints it when refused), or its run folder.
    #[arg(value_name = "RUN_ID|RUN_DIR")]
    pub run: String,
    /// The state holding the lock: a folder or a bucket URL (s3://…, gs://…, az://…, file://…) [default: the run folder's, else `.sonicflow` here].
    #[arg(long = "state", visible_alias = "state-dir", value_name = "URL|DIR")]
    pub state: Option<String>,
    /// Remove the lock even though its holder looks alive; that run then
    /// stops sending new requests at its next heartbeat.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: &UnlockArgs) -> u8 {
    match unlock(args) {
        Ok(message) => {
            crate::outln!("{message}");
            exit::SUCCESS
        }
        Err(message) => {
            crate::errln!("error: {message}");
            exit::INVALID
        }
    }
}

fn unlock(args: &UnlockArgs) -> Result<String, String> {
    let (state, id) = target(args)?;
    let store = state.locks();
    let locks = store.list().map_err(|e| e.to_string())?;
    let Some(Lock { holder, etag }) = locks.iter().find(|l| l.holder.run == id).cloned() else {
        let held: Vec<String> = locks
            .iter()
            .map(|l| format!("`{}`", l.holder.run))
            .collect();
        let held = if held.is_empty() {
            "no run holds a lock there".to_owned()
        } else {
            format!("locks there are held by {}", held.join(", "))
        };
        return Err(format!(
            "no lock in `{}` is held by run `{id}`; {held}",
            state.describe()
        ));
    };
    let process = lock::process_of(&holder);
    let stale = lock::stale(&holder, process, SystemTime::now());
    if stale.is_none() && !args.force {
        let why = if process == Process::Running {
            format!("its process {} is running on this host", holder.pid)
        } else {
            format!(
                "its last heartbeat ({}) is less than {}s old",
                holder.heartbeat,
                lock::STALE_AFTER.as_secs()
            )
        };
        return Err(format!(
            "{holder} looks alive: {why}; stop it, or pass `--force` to remove its lock anyway (it then stops sending at its next heartbeat)"
        ));
    }
    match store.delete(&holder.pipeline, &etag) {
        Ok(true) => {}
        Ok(false) => {
            return Err(format!(
                "the lock on `{}` changed while it was being removed; run `sonicflow unlock` again",
                holder.pipeline
            ));
        }
        Err(e) => return Err(e.to_string()),
    }
    let why = stale.unwrap_or_else(|| "removed with `--force`".to_owned());
    Ok(format!(
        "removed the lock on `{}` held by {holder} ({why})",
        holder.pipeline
    ))
}

/// The state folder and the run id `args` name.
fn target(args: &UnlockArgs) -> Result<(StateDir, String), String> {
    let path = Path::new(&args.run);
    if path.is_dir() {
        let header = RunLog::header(path).map_err(|e| e.to_string())?;
        let state = match (&args.state, &header.state_dir) {
            (Some(given), _) => StateDir::open(Some(given), Path::new("here"), "`--state`")?,
            (None, Some(saved)) => StateDir::local(PathBuf::from(saved)),
            (None, None) => StateDir::local(PathBuf::from(".sonicflow")),
        };
        return Ok((state, header.id));
    }
    let state = StateDir::open(args.state.as_deref(), Path::new("here"), "`--state`")?;
    Ok((state, args.run.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::lock::{Created, Holder, LocalLocks, LockStore};

    #[test]
    fn a_live_holders_lock_stays_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalLocks::new(dir.path());
        let live = Holder::this_process("songs", "songs-1", &dir.path().join("r"), "run");
        let Created::Mine(_) = store.create(&live).unwrap() else {
            panic!("the folder is empty");
        };
        let args = |force| UnlockArgs {
            run: "songs-1".into(),
            state: Some(dir.path().display().to_string()),
            force,
        };
        let refused = unlock(&args(false)).unwrap_err();
        assert!(refused.contains("looks alive: its process"), "{refused}");
        assert!(store.read("songs").unwrap().is_some());
        let other = UnlockArgs {
            run: "songs-2".into(),
            ..args(true)
        };
        let unknown = unlock(&other).unwrap_err();
        assert!(
            unknown.ends_with("locks there are held by `songs-1`"),
            "{unknown}"
        );
        let removed = unlock(&args(true)).unwrap();
        assert!(removed.ends_with("(removed with `--force`)"), "{removed}");
        assert_eq!(store.read("songs").unwrap(), None);
    }
}
