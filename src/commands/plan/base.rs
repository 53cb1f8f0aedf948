//! BASE for `plan --compare`: another manifest file, or this manifest at a
//! git revision of the repository it is in (`git show REV:./FILE`, run in
//! the manifest's folder), with the matrix file it names read at that
//! revision too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use super::PlanArgs;
use crate::manifest::load::{self, LoadOptions};
use crate::manifest::matrix::FileReader;
use crate::plan::Plan;

/// Why BASE could not be priced.
#[derive(Debug, thiserror::Error)]
pub(super) enum BaseError {
    /// The manifest at BASE has problems (printed as diagnostics).
    #[error("the manifest at BASE is not valid")]
    Invalid(Vec<crate::diag::Diagnostic>),
    #[error(
        "cannot run `git` to read `--compare {rev}`: {detail}\n  help: install git, or give a manifest file as BASE"
    )]
    NoGit { rev: String, detail: String },
    #[error(
        "`{dir}` is not in a git repository git can read, and `{rev}` is not a file (git says: {detail})\n  help: give another manifest file as `--compare FILE`, or a revision from inside a git clone (one owned by another user needs `git config --global --add safe.directory DIR`)"
    )]
    NotARepo {
        dir: String,
        rev: String,
        detail: String,
    },
    #[error(
        "`{rev}` is neither a file nor a git revision of the repository at `{dir}`\n  help: check the name (`git log --oneline`); a remote branch needs fetching first (`git fetch origin main`), a shallow clone more history (`fetch-depth: 0`)"
    )]
    UnknownRevision { rev: String, dir: String },
    #[error(
        "`git show {what}` failed: {detail}\n  help: check that the revision and the path exist"
    )]
    Show { what: String, detail: String },
}

/// The plan of BASE; `None` when BASE is a revision without the manifest
/// (then every step is new).
pub(super) fn base_plan(args: &PlanArgs, base: &str) -> Result<Option<Plan>, BaseError> {
    let options = args.options().map_err(BaseError::Invalid)?;
    if Path::new(base).is_file() {
        return crate::commands::load_and_plan(Path::new(base), &options)
            .map(|(_, plan)| Some(plan))
            .map_err(BaseError::Invalid);
    }
    let git = Git::at(&args.file, base)?;
    let Some(text) = git.show(&git.file)? else {
        return Ok(None);
    };
    let reader = {
        let git = git.clone();
        FileReader(Arc::new(move |path: &Path| {
            let name = path.strip_prefix(&git.dir).unwrap_or(path);
            match git.show(name) {
                Ok(Some(text)) => Ok(text),
                Ok(None) => Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("not in revision `{}`", git.rev),
                )),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            }
        }))
    };
    let load_options = LoadOptions {
        inputs: options.inputs.clone(),
        matrix: options.matrix.clone(),
        files: Some(reader),
    };
    let name = format!("{}:{}", git.rev, args.file.display());
    let loaded =
        load::load_str_with(&name, text, &git.dir, &load_options).map_err(BaseError::Invalid)?;
    crate::plan::build(&loaded, &options)
        .map(Some)
        .map_err(BaseError::Invalid)
}

/// A revision of the repository holding the manifest.
#[derive(Debug, Clone)]
struct Git {
    rev: String,
    /// The manifest's folder, where git runs; paths are relative to it.
    dir: PathBuf,
    /// The manifest's file name within `dir`.
    file: PathBuf,
}

impl Git {
    /// Checks that `rev` names a commit of the repository `manifest` is in.
    fn at(manifest: &Path, rev: &str) -> Result<Git, BaseError> {
        let dir = manifest.parent().unwrap_or(Path::new("")).to_path_buf();
        let file = manifest
            .file_name()
            .map_or_else(|| manifest.to_path_buf(), PathBuf::from);
        let git = Git {
            rev: rev.to_owned(),
            dir,
            file,
        };
        let shown = || {
            if git.dir.as_os_str().is_empty() {
                ".".to_owned()
            } else {
                git.dir.display().to_string()
            }
        };
        let inside = git.output(&["rev-parse", "--is-inside-work-tree"])?;
        if !inside.status.success() {
            let said = String::from_utf8_lossy(&inside.stderr);
            return Err(BaseError::NotARepo {
                dir: shown(),
                rev: rev.to_owned(),
                detail: said.lines().next().unwrap_or("nothing").trim().to_owned(),
            });
        }
        let commit = format!("{rev}^{{commit}}");
        let known = git.output(&["rev-parse", "--verify", "--quiet", &commit])?;
        if !known.status.success() {
            return Err(BaseError::UnknownRevision {
                rev: rev.to_owned(),
                dir: shown(),
            });
        }
        Ok(git)
    }

    /// `git` run in the manifest's folder.
    fn output(&self, args: &[&str]) -> Result<std::process::Output, BaseError> {
        let mut cmd = Command::new("git");
        if !self.dir.as_os_str().is_empty() {
            cmd.arg("-C").arg(&self.dir);
        }
        cmd.args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| BaseError::NoGit {
                rev: self.rev.clone(),
                detail: e.to_string(),
            })
    }

    /// The text of `path` (relative to the manifest's folder) at the
    /// revision; `None` when the revision has no such file.
    fn show(&self, path: &Path) -> Result<Option<String>, BaseError> {
        let spec = format!("{}:./{}", self.rev, path.display());
        let exists = self.output(&["cat-file", "-e", &spec])?;
        if !exists.status.success() {
            return Ok(None);
        }
        let shown = self.output(&["show", &spec])?;
        if !shown.status.success() {
            return Err(BaseError::Show {
                what: spec,
                detail: String::from_utf8_lossy(&shown.stderr).trim().to_owned(),
            });
        }
        String::from_utf8(shown.stdout)
            .map(Some)
            .map_err(|_| BaseError::Show {
                what: spec,
                detail: "the file is not UTF-8 text".to_owned(),
            })
    }
}
