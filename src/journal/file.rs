//! Append-only JSON-lines files that survive a crash and a full disk:
//! every line is written whole and synced before the call returns. A write
//! that fails part-way (the disk filled) is cut back to the last whole line
//! before the error is returned; if even that fails, the log refuses every
//! later append, so no record can land after the garbage. A torn last line
//! (the process died mid-write) is cut off when the file is opened again,
//! and a reader skips it; a reader also drops a torn fragment that an older
//! writer left glued to the front of a later, whole record.
//!
//! A run's journal has one writer, which holds an exclusive `flock` on it
//! for as long as it is open. The index and the registry are shared by every
//! run of the state folder, pipelines running side by side included: each
//! append takes the file's `flock`, cuts a torn tail a dead writer left, and
//! writes its line whole before letting go, so concurrent appends never
//! interleave and a repair never cuts another writer's line.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::JournalError;

impl ReplicaFailure {
    /// What went wrong, naming the store.
    pub fn why(&self) -> &str {
        match self {
            ReplicaFailure::NotWritten(why)
            | ReplicaFailure::Unknown(why)
            | ReplicaFailure::Taken(why) => why,
        }
    }
}

/// An open journal-like file, appended to one synced line at a time.
#[derive(Debug)]
pub struct LineLog {
    path: PathBuf,
    file: File,
    /// Shared with other processes (the index, the run registry): each
    /// append holds the file's lock, so the length it may cut back to is
    /// its own. An exclusive log holds the lock from open to drop.
    shared: bool,
    /// Why appends are refused: a failed write could not be cut back, or
    /// the replica may hold a line the file does not (or another writer's).
    poisoned: Option<Poison>,
    /// Where every line is also made durable before `append` returns.
    replica: Option<Box<dyn Replica>>,
}

/// A second home for a log's lines (a state store in a bucket): each line
/// appended locally is put there too before the append returns, and the
/// local line is cut again when that fails.
pub trait Replica: std::fmt::Debug + Send {
    /// Makes `record` (one line, without its newline) durable.
    fn put(&mut self, record: &[u8]) -> Result<(), ReplicaFailure>;
}

/// Why a [`Replica`] did not take a line.
#[derive(Debug, Clone)]
pub enum ReplicaFailure {
    /// The line is known not to be there: the local line is cut, and a
    /// later append may try again.
    NotWritten(String),
    /// The line may or may not be there: nothing more may be appended.
    Unknown(String),
    /// Another writer's line holds its place: this writer lost the log,
    /// and nothing more may be appended.
    Taken(String),
}

/// What a log file needs for an append that can be undone.
trait Storage {
    fn len(&self) -> std::io::Result<u64>;
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    fn sync(&mut self) -> std::io::Result<()>;
    fn truncate(&mut self, len: u64) -> std::io::Result<()>;
}

impl Storage for File {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        Write::write_all(self, bytes)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)?;
        self.sync_all()
    }
}

/// Why a log refuses every append.
#[derive(Debug, Clone)]
enum Poison {
    Disk(String),
    Store(String),
    Superseded(String),
}

impl Poison {
    fn error(&self, path: &Path) -> JournalError {
        match self.clone() {
            Poison::Disk(why) => JournalError::Poisoned {
                path: path.to_owned(),
                why,
            },
            Poison::Store(why) => JournalError::Replica { why },
            Poison::Superseded(why) => JournalError::Superseded { why },
        }
    }
}

/// Why an append failed.
#[derive(Debug)]
enum Failure {
    /// Nothing of the line is left in the file.
    Undone(std::io::Error),
    /// Part of the line may be left, and cutting it back failed too.
    Stuck {
        write: std::io::Error,
        cut: std::io::Error,
    },
    /// The line is in the file but the replica did not take it.
    Replica(ReplicaFailure),
}

/// Appends `line` (ending in a newline) to the end of `s`, or leaves `s`
/// as it was: a failed write or sync is cut back to the length before it.
/// Without `sync` the line is left to the kernel to write out.
fn append_line<S: Storage>(s: &mut S, line: &[u8], sync: bool) -> Result<(), Failure> {
    let before = s.len().map_err(Failure::Undone)?;
    let written = s
        .write_all(line)
        .and_then(|()| if sync { s.sync() } else { Ok(()) });
    let Err(write) = written else {
        return Ok(());
    };
    match s.truncate(before) {
        Ok(()) => Err(Failure::Undone(write)),
        Err(cut) => Err(Failure::Stuck { write, cut }),
    }
}

impl LineLog {
    /// Opens (creating) `path` for appending, cutting a torn last line.
    /// With `exclusive`, fails if another process holds the file; without,
    /// the file is shared and every append locks it for its line.
    pub fn open(path: &Path, exclusive: bool) -> Result<LineLog, JournalError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|source| JournalError::Open {
                path: path.to_owned(),
                source,
            })?;
        if exclusive {
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(JournalError::InUse {
                        path: path.to_owned(),
                    });
                }
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(JournalError::Lock {
                        path: path.to_owned(),
                        source,
                    });
                }
            }
        }
        if exclusive {
            cut_torn_tail(&mut file).map_err(|source| JournalError::Repair {
                path: path.to_owned(),
                source,
            })?;
        }
        sync_parent(path);
        Ok(LineLog {
            path: path.to_owned(),
            file,
            shared: !exclusive,
            poisoned: None,
            replica: None,
        })
    }

    /// This log, with every later line also made durable in `replica`.
    pub fn replicated(mut self, replica: Option<Box<dyn Replica>>) -> LineLog {
        self.replica = replica;
        self
    }

    /// Appends one value as a line and syncs it to disk. On an error
    /// nothing of the line is left in the file, or the log is poisoned.
    pub fn append<T: Serialize>(&mut self, value: &T) -> Result<(), JournalError> {
        self.append_value(value, true)
    }

    /// [`LineLog::append`] without waiting for the disk: only for a line
    /// whose loss (the machine dies before the kernel writes it out) costs
    /// nothing, such as a result that a resume fetches again for free. The
    /// next synced line makes this one durable too. A replica still takes
    /// the line before this returns.
    pub fn append_unsynced<T: Serialize>(&mut self, value: &T) -> Result<(), JournalError> {
        self.append_value(value, false)
    }

    fn append_value<T: Serialize>(&mut self, value: &T, sync: bool) -> Result<(), JournalError> {
        if let Some(poison) = &self.poisoned {
            return Err(poison.error(&self.path));
        }
        let mut line =
            serde_json::to_vec(value).map_err(|source| JournalError::Encode { source })?;
        line.push(b'\n');
        if self.shared {
            self.file.lock().map_err(|source| JournalError::Lock {
                path: self.path.clone(),
                source,
            })?;
            // A writer that died mid-line left a torn tail: cut it under the
            // lock, so the line it may cut is never a live writer's.
            if let Err(source) = cut_torn_tail(&mut self.file) {
                let _ = self.file.unlock();
                return Err(JournalError::Repair {
                    path: self.path.clone(),
                    source,
                });
            }
        }
        let appended = self.append_replicated(&line, sync);
        if self.shared {
            // Closing the file releases the lock too; nothing more to do on failure.
            let _ = self.file.unlock();
        }
        match appended {
            Ok(()) => Ok(()),
            Err(Failure::Undone(source)) => Err(JournalError::Write {
                path: self.path.clone(),
                source,
            }),
            Err(Failure::Stuck { write, cut }) => {
                let why = format!("{write}, and cutting the partial line failed: {cut}");
                let poison = Poison::Disk(why);
                let error = poison.error(&self.path);
                self.poisoned = Some(poison);
                Err(error)
            }
            Err(Failure::Replica(failure)) => {
                let poison = match failure {
                    ReplicaFailure::NotWritten(why) => return Err(JournalError::Replica { why }),
                    ReplicaFailure::Unknown(why) => Poison::Store(why),
                    ReplicaFailure::Taken(why) => Poison::Superseded(why),
                };
                let error = poison.error(&self.path);
                self.poisoned = Some(poison);
                Err(error)
            }
        }
    }

    /// Appends `line` locally, then to the replica; a line the replica
    /// surely lacks is cut from the file again.
    fn append_replicated(&mut self, line: &[u8], sync: bool) -> Result<(), Failure> {
        let Some(replica) = self.replica.as_mut() else {
            return append_line(&mut self.file, line, sync);
        };
        let before = Storage::len(&self.file).map_err(Failure::Undone)?;
        append_line(&mut self.file, line, sync)?;
        let record = line.strip_suffix(b"\n").unwrap_or(line);
        match replica.put(record) {
            Ok(()) => Ok(()),
            // It may be there: the line stays, and the log stops.
            Err(failure @ ReplicaFailure::Unknown(_)) => Err(Failure::Replica(failure)),
            // Surely not in the replica (or another writer's is): not in the file either.
            Err(failure) => match Storage::truncate(&mut self.file, before) {
                Ok(()) => Err(Failure::Replica(failure)),
                Err(cut) => Err(Failure::Stuck {
                    write: std::io::Error::other(failure.why().to_owned()),
                    cut,
                }),
            },
        }
    }
}

/// Drops bytes after the last newline: a line the process never finished.
fn cut_torn_tail(file: &mut File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    file.set_len(keep as u64)?;
    file.sync_all()
}

/// Makes a newly created file's name durable too.
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// Whether another process holds `path` (a run in progress).
pub fn in_use(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// The lines of `path` decoded as `T`. A torn last line is ignored, and
/// so is a torn fragment glued to the front of a whole record (see
/// [`after_torn_fragment`]); any other line that does not decode is an
/// error naming file and line. A missing file reads as empty.
pub fn read_lines<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, JournalError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(JournalError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => out.push(v),
            Err(_) if i + 1 == lines.len() && !complete => {}
            Err(source) => match after_torn_fragment(line) {
                Some(v) => out.push(v),
                None => {
                    return Err(JournalError::Decode {
                        path: path.to_owned(),
                        line: i + 1,
                        source,
                    });
                }
            },
        }
    }
    Ok(out)
}

/// Where a record may start after a torn fragment, at most: a fragment is
/// a cut-off record, and records hold far fewer objects than this.
const FRAGMENT_TRIES: usize = 10_000;

/// The whole record at the end of a line that starts with a torn fragment.
///
/// A record is only ever written whole with its newline last, so the bytes
/// of a write that failed part-way never end in one, and a later append
/// that landed after them shares their line: `{"type":"inte{"type":…}`.
/// The fragment was never a record (its writer was told it failed), so
/// dropping it loses nothing. The record is the longest tail, starting at
/// a `{`, that decodes as `T` while what comes before it does not; a line
/// with no such tail is no torn write, and stays an error. Only the first
/// [`FRAGMENT_TRIES`] places are tried, so a huge line of braces cannot
/// hold the reader up.
fn after_torn_fragment<T: DeserializeOwned>(line: &str) -> Option<T> {
    line.char_indices()
        .filter(|&(at, c)| c == '{' && at > 0)
        .take(FRAGMENT_TRIES)
        .find_map(|(at, _)| {
            let (fragment, rest) = line.split_at(at);
            let record = serde_json::from_str::<T>(rest).ok()?;
            serde_json::from_str::<T>(fragment)
                .is_err()
                .then_some(record)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_ignored_then_cut_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"a\":2}\n{\"a\":").unwrap();
        let read: Vec<serde_json::Value> = read_lines(&path).unwrap();
        assert_eq!(read.len(), 2);
        let mut log = LineLog::open(&path, true).unwrap();
        log.append(&serde_json::json!({"a": 3})).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
    }

    #[test]
    fn a_bad_line_in_the_middle_is_an_error_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        std::fs::write(&path, "{\"a\":1}\nnope\n{\"a\":2}\n").unwrap();
        let err = read_lines::<serde_json::Value>(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    /// A file in memory whose writes stop after `room` bytes, like a disk
    /// that fills, and whose cutting back can be made to fail too.
    struct Filling {
        bytes: Vec<u8>,
        room: usize,
        cut_fails: bool,
    }

    impl Storage for Filling {
        fn len(&self) -> std::io::Result<u64> {
            Ok(self.bytes.len() as u64)
        }
        fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            let fits = bytes.len().min(self.room);
            self.bytes.extend_from_slice(&bytes[..fits]);
            self.room -= fits;
            if fits < bytes.len() {
                return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
            }
            Ok(())
        }
        fn sync(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        fn truncate(&mut self, len: u64) -> std::io::Result<()> {
            if self.cut_fails {
                return Err(std::io::Error::other("read-only"));
            }
            self.bytes.truncate(len as usize);
            Ok(())
        }
    }

    #[test]
    fn a_write_that_fills_the_disk_is_cut_back_to_the_last_whole_line() {
        let mut file = Filling {
            bytes: b"{\"a\":1}\n".to_vec(),
            room: 5,
            cut_fails: false,
        };
        let failed = append_line(&mut file, b"{\"a\":2}\n", true);
        assert!(matches!(failed, Err(Failure::Undone(_))), "{failed:?}");
        assert_eq!(file.bytes, b"{\"a\":1}\n");
        // Space again: the next line lands right after the last whole one.
        file.room = 100;
        append_line(&mut file, b"{\"a\":3}\n", false).unwrap();
        assert_eq!(file.bytes, b"{\"a\":1}\n{\"a\":3}\n");
    }

    #[test]
    fn a_partial_line_that_cannot_be_cut_is_reported_as_stuck() {
        let mut file = Filling {
            bytes: Vec::new(),
            room: 3,
            cut_fails: true,
        };
        let failed = append_line(&mut file, b"{\"a\":2}\n", true);
        assert!(matches!(failed, Err(Failure::Stuck { .. })), "{failed:?}");
    }

    /// `/dev/full` takes no byte and cannot be cut: a log on it is
    /// poisoned by its first append, and refuses the next without writing.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_log_whose_partial_line_cannot_be_cut_refuses_later_appends() {
        let mut log = LineLog::open(Path::new("/dev/full"), false).unwrap();
        let first = log.append(&serde_json::json!({"a": 1})).unwrap_err();
        assert!(matches!(first, JournalError::Poisoned { .. }), "{first:?}");
        let second = log.append(&serde_json::json!({"a": 2})).unwrap_err();
        let message = second.to_string();
        assert!(message.contains("nothing more is written"), "{message}");
    }

    #[test]
    fn a_torn_fragment_glued_to_a_later_record_is_dropped_and_the_record_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let cases = [
            "{\"a\":1}\n{\"a\":{\"b\"{\"a\":2}\n{\"a\":3}\n",
            // Two failed writes before the one that landed.
            "{\"a\":1}\n{\"a\":{\"b{\"a\"{\"a\":2}\n{\"a\":3}\n",
            // The record after the fragment holds objects of its own.
            "{\"a\":1}\n{\"x\":[{\"a\":2,\"o\":{\"p\":{}}}\n{\"a\":3}\n",
        ];
        for text in cases {
            std::fs::write(&path, text).unwrap();
            let read: Vec<serde_json::Value> = read_lines(&path).unwrap();
            let a: Vec<_> = read.iter().map(|v| v["a"].clone()).collect();
            assert_eq!(a, [1, 2, 3], "{text}");
        }
    }

    #[test]
    fn a_line_that_is_no_torn_write_stays_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        for text in [
            "{\"a\":1}\nnope\n{\"a\":2}\n",
            // Two whole records on one line: neither is a torn fragment.
            "{\"a\":1}\n{\"a\":2}{\"a\":3}\n{\"a\":4}\n",
            // A fragment with nothing whole after it.
            "{\"a\":1}\n{\"a\":{\"b\n{\"a\":4}\n",
        ] {
            let err = read_lines::<serde_json::Value>(&path_with(&path, text))
                .unwrap_err()
                .to_string();
            assert!(err.contains("line 2"), "{text}: {err}");
        }
    }

    fn path_with(path: &Path, text: &str) -> PathBuf {
        std::fs::write(path, text).unwrap();
        path.to_owned()
    }

    #[test]
    fn a_shared_append_waits_for_another_writers_line_instead_of_cutting_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.jsonl");
        let mut other = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .unwrap();
        other.lock().unwrap();
        Write::write_all(&mut other, b"{\"a\":").unwrap();
        let appender = {
            let path = path.clone();
            std::thread::spawn(move || {
                LineLog::open(&path, false)?.append(&serde_json::json!({"b": 2}))
            })
        };
        // Let the appender reach the file while the other line is half written.
        std::thread::sleep(std::time::Duration::from_millis(100));
        Write::write_all(&mut other, b"1}\n").unwrap();
        other.unlock().unwrap();
        appender.join().unwrap().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"b\":2}\n");
    }

    #[test]
    fn a_shared_append_cuts_the_torn_line_of_a_dead_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.jsonl");
        let mut log = LineLog::open(&path, false).unwrap();
        std::fs::write(&path, "{\"a\":1}\n{\"a\":").unwrap();
        log.append(&serde_json::json!({"a": 2})).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"a\":2}\n");
    }

    #[test]
    fn a_second_writer_is_refused_while_the_first_holds_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let _first = LineLog::open(&path, true).unwrap();
        assert!(in_use(&path));
        let err = LineLog::open(&path, true).unwrap_err().to_string();
        assert!(err.contains("in use"), "{err}");
    }
}
