//! [`JournalError`]: what can go wrong reading or writing the state folder
//! and run folders. Each message names the file, and what to do when the
//! user can do something.

use std::io;
use std::path::PathBuf;

use super::state::JOURNAL;

/// Why run state could not be read or written; the message is what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open `{}`: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error(
        "`{}` is in use by another sonicflow process; wait for it to finish",
        path.display()
    )]
    InUse { path: PathBuf },
    #[error("cannot lock `{}`: {source}", path.display())]
    Lock { path: PathBuf, source: io::Error },
    /// Cutting a torn last line failed.
    #[error("cannot repair `{}`: {source}", path.display())]
    Repair { path: PathBuf, source: io::Error },
    #[error("cannot encode a journal line: {source}")]
    Encode { source: serde_json::Error },
    #[error("cannot write `{}`: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    /// A write failed part-way and the partial line could not be cut off:
    /// nothing more is appended after it.
    #[error(
        "cannot write `{}`: {why}; nothing more is written to it (free some space, then resume the run)",
        path.display()
    )]
    Poisoned { path: PathBuf, why: String },
    /// The state store did not take a record; `why` names the store.
    #[error(
        "the state store did not take a journal record, so nothing it describes is sent: {why}; check that the store is reachable (network, credentials), then resume with `sonicflow run --resume last` and the same `--state`"
    )]
    Replica { why: String },
    /// Another process wrote the record this one was about to: it holds
    /// the run now.
    #[error(
        "{why}; another process took the run over, so this one sends nothing more (see `sonicflow status` for where the run stands)"
    )]
    Superseded { why: String },
    #[error("cannot read `{}`: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// A line other than a torn last one that is no record; `line` counts from 1.
    #[error(
        "`{}` line {line}: not a record sonicflow wrote ({source}); keep a copy of the file, then repair or delete that one line and resume: the other lines record what was paid for, and a run without them pays for it again",
        path.display()
    )]
    Decode {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    /// The state folder could not be created.
    #[error("cannot create `{}`: {source}", dir.display())]
    CreateStateDir { dir: PathBuf, source: io::Error },
    #[error("cannot create the run folder `{}`: {source}", dir.display())]
    CreateRunDir { dir: PathBuf, source: io::Error },
    #[error(
        "`{}` already holds a run; resume it with `sonicflow run --resume {}`, or choose another `--out`",
        dir.display(),
        dir.display()
    )]
    AlreadyHoldsRun { dir: PathBuf },
    #[error("no run to resume")]
    NothingToResume,
    #[error(
        "`{}` has no journal (`{}`); is it a sonicflow run folder?",
        dir.display(),
        JOURNAL
    )]
    NotARunFolder { dir: PathBuf },
    #[error(
        "`{}` does not start with a run header: its first line was lost or it is no run's journal; keep a copy before starting afresh, since a new run pays again for what it records",
        path.display()
    )]
    NoHeader { path: PathBuf },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_and_what_to_do() {
        let io = || io::Error::other("disk full");
        let path = || PathBuf::from("s/runs/r/journal.jsonl");
        let dir = || PathBuf::from("s/runs/r");
        let Err(decode) = serde_json::from_str::<u8>("nope") else {
            panic!("`nope` is no number");
        };
        let cases = [
            (
                JournalError::Open {
                    path: path(),
                    source: io(),
                },
                "cannot open `s/runs/r/journal.jsonl`: disk full",
            ),
            (
                JournalError::InUse { path: path() },
                "`s/runs/r/journal.jsonl` is in use by another sonicflow process; wait for it to finish",
            ),
            (
                JournalError::Write {
                    path: path(),
                    source: io(),
                },
                "cannot write `s/runs/r/journal.jsonl`: disk full",
            ),
            (
                JournalError::Decode {
                    path: path(),
                    line: 2,
                    source: decode,
                },
                "`s/runs/r/journal.jsonl` line 2: not a record sonicflow wrote (expected ident at line 1 column 2); keep a copy of the file, then repair or delete that one line and resume: the other lines record what was paid for, and a run without them pays for it again",
            ),
            (
                JournalError::CreateStateDir {
                    dir: dir(),
                    source: io(),
                },
                "cannot create `s/runs/r`: disk full",
            ),
            (
                JournalError::CreateRunDir {
                    dir: dir(),
                    source: io(),
                },
                "cannot create the run folder `s/runs/r`: disk full",
            ),
            (
                JournalError::AlreadyHoldsRun { dir: dir() },
                "`s/runs/r` already holds a run; resume it with `sonicflow run --resume s/runs/r`, or choose another `--out`",
            ),
            (JournalError::NothingToResume, "no run to resume"),
            (
                JournalError::NotARunFolder { dir: dir() },
                "`s/runs/r` has no journal (`journal.jsonl`); is it a sonicflow run folder?",
            ),
            (
                JournalError::NoHeader { path: path() },
                "`s/runs/r/journal.jsonl` does not start with a run header: its first line was lost or it is no run's journal; keep a copy before starting afresh, since a new run pays again for what it records",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }
}
