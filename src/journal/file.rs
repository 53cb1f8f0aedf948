//! Append-only JSON-lines files that survive a crash: every line is written
//! whole and synced before the call returns, a torn last line (the process
//! died mid-write) is cut off when the file is opened again, and a reader
//! skips it.
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

/// An open journal-like file, appended to one synced line at a time.
#[derive(Debug)]
pub struct LineLog {
    path: PathBuf,
    file: File,
    /// Shared with other processes: locked for each append.
    shared: bool,
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
        })
    }

    /// Appends one value as a line and syncs it to disk.
    pub fn append<T: Serialize>(&mut self, value: &T) -> Result<(), JournalError> {
        let mut line =
            serde_json::to_vec(value).map_err(|source| JournalError::Encode { source })?;
        line.push(b'\n');
        if !self.shared {
            return self.write_line(&line);
        }
        self.file.lock().map_err(|source| JournalError::Lock {
            path: self.path.clone(),
            source,
        })?;
        let written = cut_torn_tail(&mut self.file)
            .map_err(|source| JournalError::Repair {
                path: self.path.clone(),
                source,
            })
            .and_then(|()| self.write_line(&line));
        let _ = self.file.unlock();
        written
    }

    fn write_line(&mut self, line: &[u8]) -> Result<(), JournalError> {
        self.file
            .write_all(line)
            .and_then(|()| self.file.sync_data())
            .map_err(|source| JournalError::Write {
                path: self.path.clone(),
                source,
            })
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

/// The lines of `path` decoded as `T`. A torn last line is ignored; any
/// other line that does not decode is an error naming file and line.
/// A missing file reads as empty.
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
            Err(source) => {
                return Err(JournalError::Decode {
                    path: path.to_owned(),
                    line: i + 1,
                    source,
                });
            }
        }
    }
    Ok(out)
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
        other.write_all(b"{\"a\":").unwrap();
        let appender = {
            let path = path.clone();
            std::thread::spawn(move || {
                LineLog::open(&path, false)?.append(&serde_json::json!({"b": 2}))
            })
        };
        // Let the appender reach the file while the other line is half written.
        std::thread::sleep(std::time::Duration::from_millis(100));
        other.write_all(b"1}\n").unwrap();
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
