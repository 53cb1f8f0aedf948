//! What the page shows, worked out from the results: every value the
//! template prints is already decided here (formatting, which file plays,
//! which URL may be linked), so the template only lays it out.

use serde::Serialize;
use serde_json::Value;

use super::files::Files;
use super::links::remote_url;
use super::text::{clock_text, duration_text, number, seconds};
use super::timeline::{self, Timeline};
use crate::report::overview::{CreditLine, Overview};
use crate::report::results::{FileKind, Results, StepResult, StepStatus};

/// Rows up to this many are shown open; more are collapsed (a failed row is
/// always open).
const OPEN_ROWS: usize = 10;

/// Output fields shown as players or links rather than as plain facts.
const SHOWN_ELSEWHERE: &[&str] = &[
    "clip_id",
    "clips",
    "full_clips",
    "stems",
    "wav_url",
    "midi_url",
    "instruments",
    "avg_bpm",
    "min_bpm",
    "max_bpm",
];

#[derive(Debug, Serialize)]
pub struct Page {
    pub name: String,
    pub file: String,
    pub sha256: String,
    pub tool: String,
    pub service: Option<String>,
    pub status: String,
    pub running: bool,
    pub stop_reason: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub wall: Option<String>,
    pub price_table: String,
    pub price_source: String,
    pub inputs: Vec<Fact>,
    pub matrix: Option<MatrixView>,
    pub credits: CreditsView,
    pub observed_notes: Vec<String>,
    pub problems: Vec<Problem>,
    pub rows: Vec<RowView>,
    pub timeline: Timeline,
}

#[derive(Debug, Serialize)]
pub struct Fact {
    pub key: String,
    pub value: String,
    /// Long or multi-line: shown folded.
    pub long: bool,
}

#[derive(Debug, Serialize)]
pub struct MatrixView {
    pub file: Option<String>,
    pub sha256: Option<String>,
    pub rows: usize,
}

#[derive(Debug, Serialize)]
pub struct CreditsView {
    pub steps: Vec<CreditRow>,
    pub actions: Vec<CreditRow>,
    pub total: CreditRow,
}

#[derive(Debug, Serialize)]
pub struct CreditRow {
    pub name: String,
    pub instances: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
    pub unfinished: usize,
    pub reused: usize,
    pub planned: u64,
    pub charged: u64,
    pub refunded: u64,
    pub in_doubt: u64,
    pub net: u64,
    /// A number, or `—` when not observed.
    pub observed: String,
    /// Runs whose results this step reused or whose tasks it attached to.
    pub from: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Problem {
    pub name: String,
    pub row: Option<String>,
    pub status: String,
    pub kind: String,
    pub message: String,
    pub fix: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RowView {
    pub key: Option<String>,
    pub values: Vec<Fact>,
    pub open: bool,
    pub summary: String,
    pub failed: bool,
    pub instances: Vec<InstanceView>,
}

#[derive(Debug, Serialize)]
pub struct InstanceView {
    pub name: String,
    pub action: String,
    pub status: String,
    pub planned: u64,
    pub charged: u64,
    pub duration: Option<String>,
    pub attempts: usize,
    pub reused_from: Option<String>,
    pub attached_from: Option<String>,
    pub skip_reason: Option<String>,
    pub error: Option<String>,
    pub clips: Vec<ClipView>,
    pub stems: Vec<StemView>,
    pub links: Vec<Link>,
    pub facts: Vec<Fact>,
}

#[derive(Debug, Serialize)]
pub struct ClipView {
    pub clip_id: String,
    pub title: Option<String>,
    pub tags: Option<String>,
    pub duration: Option<String>,
    pub lyrics: Option<String>,
    pub full: bool,
    pub audio: Option<String>,
    pub audio_local: bool,
    pub image: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StemView {
    pub name: String,
    pub audio: Option<String>,
    pub audio_local: bool,
}

#[derive(Debug, Serialize)]
pub struct Link {
    pub label: String,
    pub href: String,
    pub local: bool,
}

/// Everything the page shows of `results`; `base` leads from the report to
/// the run folder (see [`super::render`]).
pub fn build_page(results: &Results, base: &str) -> Page {
    let files = Files::of(results, base);
    let overview = Overview::of(results);
    let wall = results.wall_ms.or_else(|| {
        let start = crate::timestamp::parse_rfc3339(&results.started_at)?;
        let end = crate::timestamp::parse_rfc3339(results.finished_at.as_deref()?)?;
        end.duration_since(start)
            .ok()
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    });
    Page {
        name: results.pipeline.name.clone(),
        file: results.pipeline.file.clone(),
        sha256: results.pipeline.sha256.clone(),
        tool: format!("{} {}", results.tool.name, results.tool.version),
        service: results.service.as_ref().map(|s| {
            if s.sandbox {
                format!("{} (local sandbox)", s.base_url)
            } else {
                s.base_url.clone()
            }
        }),
        status: results.status.word().to_owned(),
        running: results.finished_at.is_none(),
        stop_reason: results.stop_reason.clone(),
        started_at: results.started_at.clone(),
        finished_at: results.finished_at.clone(),
        wall: wall.map(duration_text),
        price_table: results.price_table.version.clone(),
        price_source: results.price_table.source.clone(),
        inputs: results
            .inputs
            .iter()
            .map(|(k, v)| fact(k, &value_text(v)))
            .collect(),
        matrix: results.matrix.as_ref().map(|m| MatrixView {
            file: m.file.clone(),
            sha256: m.sha256.clone(),
            rows: m.rows.len(),
        }),
        credits: credits(&overview, results),
        observed_notes: results
            .observed_charges
            .as_ref()
            .map(|o| o.notes())
            .unwrap_or_default(),
        problems: problems(results),
        rows: rows(results, &files),
        timeline: timeline::layout(results),
    }
}

/// How a status reads: its name in `results.json`.
fn word<T: Serialize>(status: &T) -> String {
    match serde_json::to_value(status) {
        Ok(Value::String(s)) => s.replace('_', " "),
        _ => "unknown".to_owned(),
    }
}

fn credits(overview: &Overview, results: &Results) -> CreditsView {
    let row = |line: &CreditLine, from: Vec<String>| CreditRow {
        name: line.name.clone(),
        instances: line.instances,
        succeeded: line.succeeded,
        failed: line.failed,
        skipped: line.skipped,
        unfinished: line.unfinished,
        reused: line.reused,
        planned: line.planned,
        charged: line.charged,
        refunded: line.refunded,
        in_doubt: line.in_doubt,
        net: line.net(),
        observed: line
            .observed
            .map_or_else(|| "—".to_owned(), |n| n.to_string()),
        from,
    };
    let from = |step: &str| {
        let mut runs: Vec<String> = Vec::new();
        for r in results.steps.iter().filter(|r| r.step == step) {
            let marks = [
                r.reused_from
                    .as_ref()
                    .map(|run| format!("reused from {run}")),
                r.attached_from
                    .as_ref()
                    .map(|run| format!("attached to {run}")),
            ];
            for mark in marks.into_iter().flatten() {
                if !runs.contains(&mark) {
                    runs.push(mark);
                }
            }
        }
        runs
    };
    CreditsView {
        steps: overview
            .steps
            .iter()
            .map(|l| row(l, from(&l.name)))
            .collect(),
        actions: overview
            .actions
            .iter()
            .map(|l| row(l, Vec::new()))
            .collect(),
        total: row(&overview.total, Vec::new()),
    }
}

/// Failed instances and sends in doubt, with the whole message and the fix.
fn problems(results: &Results) -> Vec<Problem> {
    let mut out = Vec::new();
    for r in &results.steps {
        if r.status == StepStatus::Failed {
            let (kind, message) = r.error.as_ref().map_or_else(
                || ("unknown".to_owned(), "no error was recorded".to_owned()),
                |e| (e.kind.clone(), e.message.clone()),
            );
            let fix = r.error.as_ref().and_then(|e| e.fix()).map(str::to_owned);
            out.push(Problem {
                name: r.name(),
                row: r.row_key.clone(),
                status: word(&r.status),
                kind,
                message,
                fix,
            });
        } else if r.credits.in_doubt > 0 {
            let last = r
                .attempts
                .iter()
                .rev()
                .find_map(|a| a.error.as_ref().filter(|e| e.kind == "in_doubt"));
            out.push(Problem {
                name: r.name(),
                row: r.row_key.clone(),
                status: word(&r.status),
                kind: "in_doubt".to_owned(),
                message: last.map_or_else(
                    || {
                        format!(
                            "{} sent with no answer recorded",
                            crate::format::credits(r.credits.in_doubt)
                        )
                    },
                    |e| e.message.clone(),
                ),
                fix: last.and_then(|e| e.fix()).map(str::to_owned),
            });
        }
    }
    out
}

fn rows(results: &Results, files: &Files) -> Vec<RowView> {
    let mut rows: Vec<RowView> = Vec::new();
    for r in &results.steps {
        if rows.last().is_none_or(|row| row.key != r.row_key) {
            let values = results
                .matrix
                .as_ref()
                .and_then(|m| {
                    m.rows
                        .iter()
                        .find(|row| Some(&row.key) == r.row_key.as_ref())
                })
                .map(|row| {
                    row.values
                        .iter()
                        .map(|(k, v)| fact(k, &value_text(v)))
                        .collect()
                })
                .unwrap_or_default();
            rows.push(RowView {
                key: r.row_key.clone(),
                values,
                open: false,
                summary: String::new(),
                failed: false,
                instances: Vec::new(),
            });
        }
        if let Some(row) = rows.last_mut() {
            row.instances.push(instance(r, files));
            row.failed |= r.status == StepStatus::Failed || r.credits.in_doubt > 0;
        }
    }
    let few = rows.len() <= OPEN_ROWS;
    for row in &mut rows {
        row.open = few || row.failed;
        row.summary = row_summary(&row.instances);
    }
    rows
}

fn row_summary(instances: &[InstanceView]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for i in instances {
        match counts.iter_mut().find(|(s, _)| *s == i.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((i.status.clone(), 1)),
        }
    }
    counts
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn instance(r: &StepResult, files: &Files) -> InstanceView {
    let outputs = &r.outputs;
    let mut clips: Vec<ClipView> = Vec::new();
    for (key, full) in [("clips", false), ("full_clips", true)] {
        if let Some(list) = outputs.get(key).and_then(Value::as_array) {
            clips.extend(list.iter().map(|c| clip(c, full, files)));
        }
    }
    let stems = outputs
        .get("stems")
        .and_then(Value::as_array)
        .map(|list| list.iter().map(|s| stem(s, files)).collect())
        .unwrap_or_default();
    let links = exports(r, files);
    let facts = facts(outputs);
    InstanceView {
        name: r.name(),
        action: r.action.name().to_owned(),
        status: word(&r.status),
        planned: r.credits.planned,
        charged: r.credits.charged,
        duration: r.duration_ms.map(duration_text),
        attempts: r.attempts.len(),
        reused_from: r.reused_from.clone(),
        attached_from: r.attached_from.clone(),
        skip_reason: r.skip_reason.clone(),
        error: r
            .error
            .as_ref()
            .map(|e| format!("{}: {}", e.kind, e.message)),
        clips,
        stems,
        links,
        facts,
    }
}

/// The WAV and MIDI exports of an instance: its downloaded file, else the
/// service's URL.
fn exports(r: &StepResult, files: &Files) -> Vec<Link> {
    let outputs = &r.outputs;
    let mut links = Vec::new();
    for (key, kind, label) in [
        ("wav_url", FileKind::Wav, "WAV"),
        ("midi_url", FileKind::Midi, "MIDI"),
    ] {
        let url = text(outputs, key);
        let own = r.files.iter().find(|f| f.kind == kind);
        let local = own
            .and_then(|f| files.local(f))
            .or_else(|| url.and_then(|u| files.by_url(u)));
        let href = local.clone().or_else(|| url.and_then(remote_url));
        if let Some(href) = href {
            links.push(Link {
                label: label.to_owned(),
                href,
                local: local.is_some(),
            });
        }
    }
    links
}

/// What an instance's outputs say besides its clips, stems and exports:
/// BPM, a MIDI transcription's size, and every other plain field.
fn facts(outputs: &Value) -> Vec<Fact> {
    let mut facts = Vec::new();
    if let Some(avg) = outputs.get("avg_bpm").and_then(Value::as_f64) {
        let range = match (
            outputs.get("min_bpm").and_then(Value::as_f64),
            outputs.get("max_bpm").and_then(Value::as_f64),
        ) {
            (Some(lo), Some(hi)) => format!(" ({} to {})", number(lo), number(hi)),
            _ => String::new(),
        };
        facts.push(fact("BPM", &format!("{}{range}", number(avg))));
    }
    if let Some(instruments) = outputs.get("instruments").and_then(Value::as_array) {
        let notes: usize = instruments
            .iter()
            .filter_map(|i| i.get("notes").and_then(Value::as_array))
            .map(Vec::len)
            .sum();
        facts.push(fact(
            "MIDI",
            &format!("{} instruments, {notes} notes", instruments.len()),
        ));
    }
    if let Some(object) = outputs.as_object() {
        for (key, value) in object {
            if SHOWN_ELSEWHERE.contains(&key.as_str()) {
                continue;
            }
            let shown = match value {
                Value::Null | Value::Object(_) => continue,
                Value::Array(items) => format!("{} items", items.len()),
                other => value_text(other),
            };
            facts.push(fact(key, &shown));
        }
    }
    facts
}

fn clip(c: &Value, full: bool, files: &Files) -> ClipView {
    let clip_id = text(c, "clip_id").unwrap_or_default().to_owned();
    let audio_url = text(c, "audio_url");
    let local = files
        .by_clip(&clip_id, &[FileKind::Audio])
        .or_else(|| audio_url.and_then(|u| files.by_url(u)));
    let image_url = text(c, "image_url");
    let image = files
        .by_clip(&clip_id, &[FileKind::Image])
        .or_else(|| image_url.and_then(|u| files.by_url(u)))
        .or_else(|| image_url.and_then(remote_url));
    ClipView {
        title: text(c, "title").map(str::to_owned),
        tags: text(c, "tags").map(str::to_owned),
        duration: c.get("duration").and_then(seconds).map(clock_text),
        lyrics: text(c, "lyrics")
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned),
        full,
        audio_local: local.is_some(),
        audio: local.or_else(|| audio_url.and_then(remote_url)),
        image,
        clip_id,
    }
}

fn stem(s: &Value, files: &Files) -> StemView {
    let clip_id = text(s, "clip_id").unwrap_or_default();
    let url = text(s, "audio_url");
    let local = files
        .by_clip(clip_id, &[FileKind::Stem, FileKind::Audio])
        .or_else(|| url.and_then(|u| files.by_url(u)));
    StemView {
        name: text(s, "name").unwrap_or("stem").to_owned(),
        audio_local: local.is_some(),
        audio: local.or_else(|| url.and_then(remote_url)),
    }
}

fn text<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

fn fact(key: &str, value: &str) -> Fact {
    Fact {
        key: key.to_owned(),
        long: value.contains('\n') || value.chars().count() > 120,
        value: value.to_owned(),
    }
}

/// A JSON value as a person reads it: strings bare, the rest as JSON.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
