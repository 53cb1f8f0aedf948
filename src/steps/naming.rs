//! File names from `artifacts.name`: a path template such as
//! `{row}/{step}/{instance}/{title}-{n}.{ext}`, parsed once when the plan
//! is built and rendered for every file a step instance saves.
//!
//! Rendering is a pure function of the template, the instance and its
//! outputs, so the same file gets the same name whatever order concurrent
//! downloads finish in, and again after a kill and a resume:
//!
//! * every placeholder's value is sanitised (see [`sanitize`]); a value that
//!   names *what* a file is (`{row}`, `{instance}`, `{clip}`) and that
//!   sanitising changed gets `-` and 8 hex digits of its raw text's sha256,
//!   so two different keys never share a folder;
//! * a path component that renders empty is dropped (`{row}` without a
//!   matrix, `{instance}` for a step that does not fan out);
//! * two files of one instance that would share a path (two clips with the
//!   same title and no `{n}`) are told apart in output order: `-2`, `-3`.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::report::FileKind;

use super::sanitize::{self, COMPONENT_MAX};

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "row", "step", "instance", "title", "n", "clip", "stem", "kind", "ext",
];

/// The template every kind of file but stems is named by.
pub const DEFAULT_NAME: &str = "{row}/{step}/{instance}/{title}-{n}.{ext}";
/// The template stems are named by.
pub const DEFAULT_STEM_NAME: &str = "{row}/{step}/{instance}/{stem}.{ext}";

/// One piece of a path component.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Slot(Slot),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Row,
    Step,
    Instance,
    Title,
    N,
    Clip,
    Stem,
    Kind,
    Ext,
}

impl Slot {
    fn parse(name: &str) -> Option<Slot> {
        Some(match name {
            "row" => Slot::Row,
            "step" => Slot::Step,
            "instance" => Slot::Instance,
            "title" => Slot::Title,
            "n" => Slot::N,
            "clip" => Slot::Clip,
            "stem" => Slot::Stem,
            "kind" => Slot::Kind,
            "ext" => Slot::Ext,
            _ => return None,
        })
    }
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameTemplate {
    text: String,
    components: Vec<Vec<Piece>>,
}

/// Why a template cannot be used: where in its text, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset of the problem in the template.
    pub offset: usize,
    /// Length in bytes of the part at fault (at least 1 when the template is not empty).
    pub len: usize,
    pub message: String,
    pub help: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn err(offset: usize, len: usize, message: String, help: &str) -> TemplateError {
    TemplateError {
        offset,
        len,
        message,
        help: help.to_owned(),
    }
}

/// What a template must contain so that no two step instances' files can
/// share a name: known from the plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// The pipeline has a matrix: `{row}` (or `{clip}`) tells rows apart.
    pub row: bool,
    /// Some step fans out: `{instance}` (or `{clip}`) tells its instances apart.
    pub instance: bool,
}

impl NameTemplate {
    /// Parses `text`, checking it can only name files inside the output folder.
    pub fn parse(text: &str, needs: Needs) -> Result<NameTemplate, TemplateError> {
        let whole = text.len().max(1);
        if text.trim().is_empty() {
            return Err(err(
                0,
                whole,
                "the file name template is empty".to_owned(),
                &format!("write a path such as `{DEFAULT_NAME}`"),
            ));
        }
        if text.starts_with(['/', '\\']) || text.get(1..2) == Some(":") {
            return Err(err(
                0,
                1,
                "the file name template is an absolute path".to_owned(),
                &format!(
                    "files are always saved inside the run's output folder: write a relative path such as `{DEFAULT_NAME}`"
                ),
            ));
        }
        if let Some(at) = text.find('\\') {
            return Err(err(
                at,
                1,
                "the file name template contains `\\`".to_owned(),
                "separate folders with `/`",
            ));
        }
        let mut components = Vec::new();
        let mut start = 0;
        for part in text.split('/') {
            components.push(parse_component(part, start)?);
            start += part.len() + 1;
        }
        let template = NameTemplate {
            text: text.to_owned(),
            components,
        };
        template.check_covers(needs)?;
        Ok(template)
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn has(&self, slot: Slot) -> bool {
        self.components
            .iter()
            .flatten()
            .any(|p| *p == Piece::Slot(slot))
    }

    fn check_covers(&self, needs: Needs) -> Result<(), TemplateError> {
        let whole = self.text.len();
        let last = self.components.last().into_iter().flatten();
        if !last.into_iter().any(|p| *p == Piece::Slot(Slot::Ext)) {
            return Err(err(
                0,
                whole,
                format!(
                    "the file name template `{}` does not end in `{{ext}}`",
                    self.text
                ),
                "end it with `.{ext}` so each file keeps its type (`.mp3`, `.jpeg`, `.wav`, `.mid`) and a clip's audio and cover art get different names",
            ));
        }
        let mut missing = Vec::new();
        if !self.has(Slot::Step) {
            missing.push("{step}");
        }
        let clip = self.has(Slot::Clip);
        if needs.row && !clip && !self.has(Slot::Row) {
            missing.push("{row}");
        }
        if needs.instance && !clip && !self.has(Slot::Instance) {
            missing.push("{instance}");
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(err(
            0,
            whole,
            format!(
                "the file name template `{}` would give files of different step instances the same name: it lacks {}",
                self.text,
                missing.join(" and ")
            ),
            &format!(
                "add {} (a part that is empty for a step is left out), e.g. `{DEFAULT_NAME}`",
                missing.join(" and ")
            ),
        ))
    }
}

fn parse_component(part: &str, start: usize) -> Result<Vec<Piece>, TemplateError> {
    if part.is_empty() {
        return Err(err(
            start,
            1,
            "the file name template has an empty folder name (`//`, or `/` at an end)".to_owned(),
            "remove the extra `/`",
        ));
    }
    if part == "." || part == ".." {
        return Err(err(
            start,
            part.len(),
            format!("the file name template contains `{part}` as a folder"),
            "files are always saved inside the run's output folder: remove it",
        ));
    }
    let mut pieces = Vec::new();
    let mut rest = part;
    let mut at = start;
    while !rest.is_empty() {
        if let Some(open) = rest.find(['{', '}']) {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let here = at + open;
            if rest[open..].starts_with('}') {
                return Err(err(
                    here,
                    1,
                    "the file name template has a `}` with no `{` before it".to_owned(),
                    "placeholders are written `{name}`",
                ));
            }
            let inner = &rest[open + 1..];
            let Some(close) = inner
                .find(['{', '}'])
                .filter(|&i| inner[i..].starts_with('}'))
                .map(|i| i + 1)
            else {
                return Err(err(
                    here,
                    rest.len() - open,
                    "the file name template has a `{` that is never closed".to_owned(),
                    "close the placeholder with `}`",
                ));
            };
            let name = &rest[open + 1..open + close];
            let Some(slot) = Slot::parse(name) else {
                let help = crate::diag::did_you_mean(name, PLACEHOLDERS.iter().copied())
                    .unwrap_or_else(|| {
                        format!(
                            "the placeholders are {}",
                            PLACEHOLDERS
                                .iter()
                                .map(|p| format!("`{{{p}}}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    });
                return Err(TemplateError {
                    offset: here,
                    len: close + 1,
                    message: format!("unknown placeholder `{{{name}}}` in the file name template"),
                    help,
                });
            };
            pieces.push(Piece::Slot(slot));
            at = here + close + 1;
            rest = &rest[open + close + 1..];
        } else {
            pieces.push(Piece::Text(rest.to_owned()));
            break;
        }
    }
    Ok(pieces)
}

/// The templates of a run, per kind of file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNames {
    /// Clips, cover art, WAV and MIDI exports.
    pub files: NameTemplate,
    /// Stems.
    pub stems: NameTemplate,
}

impl Default for FileNames {
    fn default() -> FileNames {
        let parse = |t: &str| {
            NameTemplate::parse(t, Needs::default()).unwrap_or_else(|_| NameTemplate {
                text: t.to_owned(),
                components: Vec::new(),
            })
        };
        FileNames {
            files: parse(DEFAULT_NAME),
            stems: parse(DEFAULT_STEM_NAME),
        }
    }
}

impl FileNames {
    /// The template for files of `kind`.
    pub fn for_kind(&self, kind: FileKind) -> &NameTemplate {
        match kind {
            FileKind::Stem => &self.stems,
            _ => &self.files,
        }
    }
}

/// Everything a file's name may say.
#[derive(Debug, Clone, Copy)]
pub struct FileFacts<'a> {
    /// The matrix key of the row.
    pub row: Option<&'a str>,
    pub step: &'a str,
    /// The fan-out part of the instance's name (`0`, `jazz.1`); empty when it does not fan out.
    pub instance: &'a str,
    pub title: Option<&'a str>,
    /// 1-based position of the clip in the instance's output.
    pub n: usize,
    pub clip: &'a str,
    pub stem: Option<&'a str>,
    pub kind: FileKind,
    pub ext: &'a str,
}

/// `raw` as a component; when sanitising changed it, `-` and 8 hex digits
/// of its sha256 are appended so different raw texts stay different.
fn identity(raw: &str) -> String {
    if raw.is_empty() {
        return String::new();
    }
    let safe = sanitize::component(raw);
    if safe == raw {
        return safe;
    }
    let digest = hex::encode(Sha256::digest(raw.as_bytes()));
    let keep: String = safe.chars().take(COMPONENT_MAX - 9).collect();
    format!("{keep}-{}", &digest[..8])
}

/// A value that does not name what a file is: sanitised only.
fn plain(raw: &str) -> String {
    if raw.is_empty() {
        String::new()
    } else {
        sanitize::component(raw)
    }
}

/// Longest title or stem name kept in a name; a longer one is cut and
/// marked with a digest of the whole.
const WORDS_MAX: usize = 64;

/// `text` cut to [`COMPONENT_MAX`], keeping its extension and marking the
/// cut with 8 hex digits of the whole text's sha256.
fn shortened(text: &str) -> String {
    let digest = hex::encode(Sha256::digest(text.as_bytes()));
    let tail = text
        .rfind('.')
        .map(|i| &text[i..])
        .filter(|t| t.chars().count() <= 16)
        .unwrap_or("");
    let head = &text[..text.len() - tail.len()];
    let keep = COMPONENT_MAX - 9 - tail.chars().count();
    let head: String = sanitize::component(head).chars().take(keep).collect();
    let ext = match tail.strip_prefix('.') {
        Some(e) if !e.is_empty() => format!(".{}", sanitize::component(e)),
        _ => String::new(),
    };
    format!("{head}-{}{ext}", &digest[..8])
}

/// A title or a stem name, as a person would type it in a file name:
/// each run of spaces and punctuation becomes one `_` (`Demo, Jazz Take`
/// → `Demo_Jazz_Take`).
fn words(raw: &str) -> String {
    let safe = plain(raw);
    let joined = safe
        .split('_')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    let words = if joined.is_empty() { safe } else { joined };
    if words.chars().count() <= WORDS_MAX {
        return words;
    }
    let digest = hex::encode(Sha256::digest(raw.as_bytes()));
    let head: String = words.chars().take(WORDS_MAX - 9).collect();
    format!("{head}-{}", &digest[..8])
}

/// Who a saved file belongs to, for telling apart two files that would
/// share a path: the instance (`song[a/0]`), the clip and the kind.
pub fn owner(instance: &str, clip: &str, kind: FileKind) -> String {
    format!("{instance} {clip} {}", kind_name(kind))
}

/// The name of a kind of file, as `{kind}` and results.json write it.
pub fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Audio => "audio",
        FileKind::Image => "image",
        FileKind::Wav => "wav",
        FileKind::Midi => "midi",
        FileKind::Stem => "stem",
    }
}

impl NameTemplate {
    /// The relative path of a file described by `facts`: only plain
    /// components, never `.` or `..`, never empty.
    pub fn render(&self, facts: &FileFacts<'_>) -> PathBuf {
        let mut path = PathBuf::new();
        for component in &self.components {
            let mut text = String::new();
            for piece in component {
                match piece {
                    Piece::Text(t) => text.push_str(t),
                    Piece::Slot(slot) => text.push_str(&value(*slot, facts)),
                }
            }
            if text.is_empty() {
                continue;
            }
            // The values are safe already: only the template's own text or
            // the length can change here. A part cut short keeps a digest
            // of the whole, so two long names stay apart.
            if text.chars().count() > COMPONENT_MAX {
                path.push(shortened(&text));
            } else {
                path.push(sanitize::component(&text));
            }
        }
        if path.as_os_str().is_empty() {
            path.push(identity(facts.clip));
        }
        path
    }
}

fn value(slot: Slot, f: &FileFacts<'_>) -> String {
    match slot {
        Slot::Row => identity(f.row.unwrap_or_default()),
        Slot::Step => plain(f.step),
        Slot::Instance => identity(f.instance),
        // A file with no title of its own (a stem, a WAV or MIDI export)
        // is named by its stem, else by its step.
        Slot::Title => match f.title.filter(|t| !t.trim().is_empty()) {
            Some(t) => words(t),
            None => words(f.stem.unwrap_or(f.step)),
        },
        Slot::N => f.n.to_string(),
        Slot::Clip => identity(f.clip),
        Slot::Stem => f.stem.map_or_else(|| identity(f.clip), words),
        Slot::Kind => kind_name(f.kind).to_owned(),
        Slot::Ext => plain(f.ext),
    }
}

/// Makes `path` unique among `taken`: the first file keeps it, later ones
/// get `-2`, `-3`, … before the extension. Called in output order, so the
/// result does not depend on when each download finishes.
pub fn dedupe(path: PathBuf, taken: &mut HashSet<PathBuf>) -> PathBuf {
    if taken.insert(path.clone()) {
        return path;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_owned(), format!(".{e}")),
        _ => (name.clone(), String::new()),
    };
    let stem: String = stem.chars().take(COMPONENT_MAX - 8).collect();
    let mut n = 2;
    loop {
        let candidate = path.with_file_name(format!("{stem}-{n}{ext}"));
        if taken.insert(candidate.clone()) {
            return candidate;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Component;

    fn facts<'a>(row: Option<&'a str>, instance: &'a str) -> FileFacts<'a> {
        FileFacts {
            row,
            step: "song",
            instance,
            title: Some("Midnight Rain"),
            n: 1,
            clip: "c1",
            stem: None,
            kind: FileKind::Audio,
            ext: "mp3",
        }
    }

    fn show(t: &NameTemplate, f: &FileFacts<'_>) -> String {
        sanitize::slash_path(&t.render(f))
    }

    #[test]
    fn the_defaults_read_like_music() {
        let names = FileNames::default();
        let row = facts(Some("song07"), "");
        assert_eq!(show(&names.files, &row), "song07/song/Midnight_Rain-1.mp3");
        let image = FileFacts {
            kind: FileKind::Image,
            ext: "jpeg",
            ..row
        };
        assert_eq!(
            show(&names.files, &image),
            "song07/song/Midnight_Rain-1.jpeg"
        );
        let stem = FileFacts {
            step: "stems",
            instance: "1",
            title: None,
            stem: Some("vocals"),
            kind: FileKind::Stem,
            ..row
        };
        assert_eq!(show(&names.stems, &stem), "song07/stems/1/vocals.mp3");
        assert_eq!(
            show(&names.files, &facts(None, "")),
            "song/Midnight_Rain-1.mp3"
        );
    }

    #[test]
    fn identities_that_sanitising_changed_stay_apart() {
        let t = NameTemplate::parse("{row}/{step}/{n}.{ext}", Needs::default()).unwrap();
        let a = show(&t, &facts(Some("a b"), ""));
        let b = show(&t, &facts(Some("a_b"), ""));
        let c = show(&t, &facts(Some("a?b"), ""));
        assert_eq!(b, "a_b/song/1.mp3");
        assert!(
            a.starts_with("a_b-") && c.starts_with("a_b-") && a != c,
            "{a} {c}"
        );
        let hostile = show(&t, &facts(Some("../../etc"), ""));
        assert!(hostile.split('/').all(|c| !c.starts_with('.')), "{hostile}");
    }

    #[test]
    fn the_templates_own_text_is_kept_readable_and_long_names_stay_apart() {
        let t =
            NameTemplate::parse("{row}/My Songs/{step}/{title}.{ext}", Needs::default()).unwrap();
        assert_eq!(
            show(&t, &facts(Some("a"), "")),
            "a/My_Songs/song/Midnight_Rain.mp3"
        );
        let long = |end: &'static str| FileFacts {
            title: Some(Box::leak(
                format!("{}{end}", "x".repeat(120)).into_boxed_str(),
            )),
            ..facts(None, "")
        };
        let (a, b) = (show(&t, &long("a")), show(&t, &long("b")));
        assert_ne!(a, b);
        assert!(a.ends_with(".mp3"), "{a}");
        assert!(a.rsplit('/').next().unwrap().len() <= WORDS_MAX + 4, "{a}");
        // A name too long for one folder keeps its extension.
        let wide = NameTemplate::parse("{step}/{title}-{title}.{ext}", Needs::default()).unwrap();
        let name = show(&wide, &long("a"));
        let file = name.rsplit('/').next().unwrap();
        assert!(
            file.ends_with(".mp3") && file.len() <= COMPONENT_MAX,
            "{name}"
        );
    }

    #[test]
    fn a_file_without_a_title_takes_its_stem_or_step() {
        let t = NameTemplate::parse("{step}/{title}.{ext}", Needs::default()).unwrap();
        let untitled = FileFacts {
            title: Some("  "),
            ..facts(None, "")
        };
        assert_eq!(show(&t, &untitled), "song/song.mp3");
        let stem = FileFacts {
            title: None,
            stem: Some("Backing Vocals"),
            ..untitled
        };
        assert_eq!(show(&t, &stem), "song/Backing_Vocals.mp3");
    }

    #[test]
    fn bad_templates_say_where_and_how_to_fix() {
        let cases: &[(&str, Needs, &str, usize)] = &[
            ("", Needs::default(), "empty", 0),
            ("/{step}/{n}.{ext}", Needs::default(), "absolute", 0),
            ("{step}/../{n}.{ext}", Needs::default(), "`..`", 7),
            (
                "{step}/{titel}.{ext}",
                Needs::default(),
                "unknown placeholder `{titel}`",
                7,
            ),
            ("{step}/{n.{ext}", Needs::default(), "never closed", 7),
            ("{step}//{n}.{ext}", Needs::default(), "empty folder", 7),
            ("{step}/{n}", Needs::default(), "`{ext}`", 0),
            ("{title}.{ext}", Needs::default(), "lacks {step}", 0),
            (
                "{step}/{n}.{ext}",
                Needs {
                    row: true,
                    instance: true,
                },
                "lacks {row} and {instance}",
                0,
            ),
        ];
        for (text, needs, says, offset) in cases {
            let e = NameTemplate::parse(text, *needs).unwrap_err();
            assert!(e.message.contains(says), "{text}: {}", e.message);
            assert_eq!(e.offset, *offset, "{text}");
            assert!(!e.help.is_empty());
        }
        let typo = NameTemplate::parse("{step}/{titel}.{ext}", Needs::default()).unwrap_err();
        assert!(typo.help.contains("title"), "{}", typo.help);
        // A clip id tells every instance apart on its own.
        assert!(
            NameTemplate::parse(
                "{step}/{clip}.{ext}",
                Needs {
                    row: true,
                    instance: true
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn dedupe_numbers_later_files_in_the_order_given() {
        let mut taken = HashSet::new();
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(dedupe(p("a/x.mp3"), &mut taken), p("a/x.mp3"));
        assert_eq!(dedupe(p("a/x.mp3"), &mut taken), p("a/x-2.mp3"));
        assert_eq!(dedupe(p("a/x-2.mp3"), &mut taken), p("a/x-2-2.mp3"));
        assert_eq!(dedupe(p("a/x.mp3"), &mut taken), p("a/x-3.mp3"));
        assert_eq!(dedupe(p("a/x.jpeg"), &mut taken), p("a/x.jpeg"));
    }

    proptest! {
        #[test]
        fn any_values_render_to_plain_components(
            row in proptest::option::of(any::<String>()),
            instance in any::<String>(),
            title in proptest::option::of(any::<String>()),
            clip in any::<String>(),
            stem in proptest::option::of(any::<String>()),
        ) {
            let names = FileNames::default();
            let f = FileFacts {
                row: row.as_deref(),
                step: "s",
                instance: &instance,
                title: title.as_deref(),
                n: 3,
                clip: &clip,
                stem: stem.as_deref(),
                kind: FileKind::Stem,
                ext: "mp3",
            };
            for t in [&names.files, &names.stems] {
                let path = t.render(&f);
                prop_assert!(path.components().count() >= 1);
                for c in path.components() {
                    let Component::Normal(part) = c else {
                        return Err(TestCaseError::fail(format!("{path:?}")));
                    };
                    let part = part.to_string_lossy();
                    prop_assert!(!part.is_empty() && part.len() <= COMPONENT_MAX);
                    prop_assert!(!part.starts_with('.'));
                }
            }
        }

        #[test]
        fn different_rows_never_share_a_folder(a in any::<String>(), b in any::<String>()) {
            prop_assume!(a != b && !a.is_empty() && !b.is_empty());
            let names = FileNames::default();
            let fa = facts(Some(&a), "");
            let fb = facts(Some(&b), "");
            prop_assert_ne!(names.files.render(&fa), names.files.render(&fb));
        }
    }
}
