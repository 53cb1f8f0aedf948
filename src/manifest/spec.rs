//! The pipeline manifest, version 1, exactly as written in YAML.
//!
//! Doc comments here become the descriptions of the JSON Schema that editors
//! use for completion, so they are written for pipeline authors.

use std::borrow::Cow;
use std::collections::BTreeMap;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::actions::ActionWith;
use super::value::{Condition, DurationSpec, LatenessSpec, Tpl};
use crate::action::Action;

/// A sonicflow pipeline: a graph of steps run against the MusicAPI Sonic API.
///
/// `S` is the step type: raw YAML while loading, typed steps afterwards,
/// and the schema-only `StepSchema` when generating the JSON Schema.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Pipeline")]
pub struct ManifestSpec<S> {
    /// Manifest language version; always `1`.
    pub version: u32,
    /// Short name of the pipeline, used in plans and results.
    pub name: String,
    /// What the pipeline does.
    #[serde(default)]
    pub description: Option<String>,
    /// Named values the steps can read as `${{ inputs.<name> }}`; override with `--input name=value`.
    #[serde(default)]
    pub inputs: IndexMap<String, InputSpec>,
    /// Values merged into every step's `with` where the action takes the field.
    #[serde(default)]
    pub defaults: Option<DefaultsSpec>,
    /// Concurrency, rate and budget limits.
    #[serde(default)]
    pub limits: Option<LimitsSpec>,
    /// How failed remote tasks and transient errors are retried.
    #[serde(default)]
    pub retry: Option<RetrySpec>,
    /// How remote tasks are polled.
    #[serde(default)]
    pub poll: Option<PollSpec>,
    /// Run the whole graph once per row.
    #[serde(default)]
    pub matrix: Option<MatrixSpec>,
    /// Models newer than this sonicflow knows, with their limits.
    #[serde(default)]
    pub models: IndexMap<String, ModelSpec>,
    /// Result files to save into the run's output folder (`--download` saves all of them).
    #[serde(default)]
    pub artifacts: Option<ArtifactsSpec>,
    /// Price overrides in credits, by operation (`create_music`, `wav`, `stems_full`, …).
    #[serde(default)]
    pub prices: BTreeMap<String, u64>,
    /// Where run state (journals, reuse index, locks) is kept: a folder, or a bucket URL (`s3://bucket/prefix`, `gs://…`, `az://…`, `file:///…`) with credentials from the cloud's usual environment; `--state` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The steps, keyed by id. Ids are letters, digits, `_` and `-`, starting with a letter or `_`.
    #[schemars(extend("propertyNames" = { "pattern": "^[A-Za-z_][A-Za-z0-9_-]*$" }))]
    pub steps: IndexMap<String, S>,
}

impl<S> ManifestSpec<S> {
    /// The same manifest with `steps` replacing the steps it had.
    pub fn with_steps<T>(self, steps: IndexMap<String, T>) -> ManifestSpec<T> {
        ManifestSpec {
            version: self.version,
            name: self.name,
            description: self.description,
            inputs: self.inputs,
            defaults: self.defaults,
            limits: self.limits,
            retry: self.retry,
            poll: self.poll,
            matrix: self.matrix,
            models: self.models,
            artifacts: self.artifacts,
            prices: self.prices,
            state: self.state,
            steps,
        }
    }
}

/// A declared input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The value used when `--input` does not give one; without it the input is required.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// What the input is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// Fields merged into every step whose action takes them (a step's own value wins).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultsSpec {
    /// Model version, e.g. `sonic-v5`.
    pub mv: Option<Tpl<String>>,
    /// `true`: lyrics in `prompt`; `false`: a description in `gpt_description_prompt`.
    pub custom_mode: Option<Tpl<bool>>,
    /// Let the service write lyrics.
    pub auto_lyrics: Option<Tpl<bool>>,
    /// Comma-separated styles.
    pub tags: Option<Tpl<String>>,
    /// Styles to avoid.
    pub negative_tags: Option<Tpl<String>>,
    /// Generate without vocals.
    pub make_instrumental: Option<Tpl<bool>>,
    /// `f` or `m`; only on v4.5 and later.
    pub vocal_gender: Option<Tpl<String>>,
    /// How strongly to follow the tags, 0 to 1.
    pub style_weight: Option<Tpl<f64>>,
    /// How adventurous to be, 0 to 1.
    pub weirdness_constraint: Option<Tpl<f64>>,
    /// Influence of source audio, 0 to 1.
    pub audio_weight: Option<Tpl<f64>>,
    /// Serve results from the upstream CDN.
    pub use_suno_cdn: Option<Tpl<bool>>,
    /// Target length in seconds, 10 to 360.
    pub duration: Option<Tpl<u32>>,
}

/// Limits on what a run may do at once and in total.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Remote tasks submitted and not yet finished, at most.
    pub max_in_flight: Option<u32>,
    /// Generation submits per minute, at most: create-type task types,
    /// upload-extend / upload-cover, sample, mashup, replace-section and
    /// stems (the service allows one per 3 s). Default 20.
    pub submits_per_minute: Option<u32>,
    /// Quick paid calls per minute, at most: bpm, wav, midi, vox,
    /// upsample-tags, aligned lyrics, persona, upload, lyrics (nothing
    /// documented limits them). Default 60.
    pub quick_calls_per_minute: Option<u32>,
    /// Status polls per second, at most.
    pub polls_per_second: Option<u32>,
    /// Credits the pipeline may spend; `plan` fails above it and `run` never submits past it.
    pub max_credits: Option<u64>,
}

/// Retry policy.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, including the first.
    pub attempts: Option<u32>,
    /// Delay between attempts.
    pub backoff: Option<BackoffSpec>,
}

/// Exponential backoff with a cap.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackoffSpec {
    /// First delay.
    pub initial: Option<DurationSpec>,
    /// Longest delay.
    pub max: Option<DurationSpec>,
    /// Growth factor between delays.
    pub factor: Option<f64>,
    /// Randomize delays by up to this fraction (0 to 1) so retries do not align.
    pub jitter: Option<f64>,
}

/// Poll schedule of remote tasks. By default each task is polled from the
/// latency window expected of its operation, as the run learns it, and
/// seen done within `lateness` of finishing; `initial_delay` or `interval`
/// poll on a fixed schedule instead.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollSpec {
    /// How late a poll may see a finished task: a percentage of the time it
    /// took (`25%`, the default) or a duration (`20s`).
    pub lateness: Option<LatenessSpec>,
    /// Fixed schedule: wait this long after submitting before the first poll.
    pub initial_delay: Option<DurationSpec>,
    /// Fixed schedule: time between polls of one task.
    pub interval: Option<DurationSpec>,
    /// Randomize intervals by up to this fraction (0 to 1).
    pub jitter: Option<f64>,
    /// Give up on a task that has not finished after this long.
    pub timeout: Option<DurationSpec>,
}

/// Rows that instantiate the whole graph once each.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatrixSpec {
    /// The column whose (unique) value names each instance in plans and results.
    pub key: String,
    /// Rows written inline (`--matrix FILE` replaces them).
    #[serde(default)]
    pub rows: Option<Vec<IndexMap<String, serde_json::Value>>>,
    /// A CSV file with a header row, or a `.jsonl` file with one object per line, relative to the manifest; may be an input (`${{ inputs.prompts }}`). `--matrix FILE` replaces it.
    #[serde(default)]
    pub file: Option<String>,
}

/// Which result files a run downloads, and how they are named.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactsSpec {
    /// Where each file goes in the output folder: a path template with `{row}` (matrix key), `{step}`, `{instance}` (fan-out position), `{title}`, `{n}` (clip number in the step's output), `{clip}` (clip id), `{stem}` (stem name), `{kind}` and `{ext}`; a folder that comes out empty is left out. One template for every file, or `files:` and `stems:` apart. Default: `{row}/{step}/{instance}/{title}-{n}.{ext}`, stems `{row}/{step}/{instance}/{stem}.{ext}`.
    #[serde(default)]
    pub name: Option<ArtifactName>,
    /// The MP3 of every generated clip, and its cover art beside it.
    #[serde(default)]
    pub audio: bool,
    /// WAV exports of `wav` steps.
    #[serde(default)]
    pub wav: bool,
    /// Every stem of `stems_basic` / `stems_full` steps.
    #[serde(default)]
    pub stems: bool,
    /// MIDI files of `midi` steps.
    #[serde(default)]
    pub midi: bool,
}

/// `artifacts.name`: one template, or one for stems and one for the rest.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum ArtifactName {
    /// Every file, stems included.
    One(String),
    /// Apart; a kind left out keeps its default.
    Apart(ArtifactNames),
}

/// By hand, so that a wrong value is told what is expected in words.
impl<'de> Deserialize<'de> for ArtifactName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Expect;
        impl<'de> serde::de::Visitor<'de> for Expect {
            type Value = ArtifactName;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a path template such as `{row}/{step}/{instance}/{title}-{n}.{ext}`, or a mapping with `files` and `stems` templates",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ArtifactName, E> {
                Ok(ArtifactName::One(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ArtifactName, A::Error> {
                ArtifactNames::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(ArtifactName::Apart)
            }
        }
        d.deserialize_any(Expect)
    }
}

/// Templates per kind of file.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactNames {
    /// Clips, cover art, WAV and MIDI exports.
    #[serde(default)]
    pub files: Option<String>,
    /// Stems.
    #[serde(default)]
    pub stems: Option<String>,
}

/// Limits of a model that this sonicflow does not know yet.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Longest `prompt`, in characters.
    pub prompt_max: u32,
    /// Longest `tags`, in characters.
    pub tags_max: u32,
    /// Whether `vocal_gender` is supported.
    #[serde(default)]
    pub vocal_gender: bool,
    /// Whether `variation_category` (remaster) is supported.
    #[serde(default)]
    pub variation_category: bool,
}

/// A step as written, before its `with` block is typed.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSpec<W> {
    /// The Sonic operation this step performs.
    pub action: Action,
    /// The operation's fields; which keys are allowed depends on `action`.
    #[serde(default)]
    pub with: Option<W>,
    /// Steps that must finish first, besides those referenced in `with`: one step id or a list of them.
    #[serde(default, deserialize_with = "super::value::step_ids")]
    #[schemars(schema_with = "super::value::step_ids_schema")]
    pub needs: Vec<String>,
    /// Run the step once per element: an expression giving a list (e.g. `${{ steps.song.outputs.clips }}`) or a literal list.
    #[serde(default)]
    pub for_each: Option<Tpl<Vec<serde_json::Value>>>,
    /// With `for_each` over objects (e.g. `clips` or `stems`): the field whose value names each instance (e.g. `key: name`); text and numbers of a literal list name themselves.
    #[serde(default)]
    pub key: Option<String>,
    /// Run the step only when this holds: `true`/`false`, or an expression typed as a boolean, with or without `${{ … }}` (e.g. `${{ inputs.vocals }}`). When it is false the step is skipped (condition): not failed, nothing paid, and the steps that need it are skipped too.
    #[serde(default, rename = "if")]
    pub condition: Option<Condition>,
    /// What a fan-in (`steps.<id>.outputs[*]`) does with an instance that failed or was skipped: `fail` (the default) skips this step, naming it; `skip` leaves it out of the list. Instances skipped by their condition are never in the list.
    #[serde(default)]
    pub on_missing: Option<OnMissing>,
    /// `row` (the default): the step runs once per matrix row. `pipeline`: it runs once in the whole run, after the rows it reads, which it reads through `steps.<id>.outputs[*]` (every row, in row order); it cannot read `matrix`.
    #[serde(default)]
    pub per: Option<Per>,
    /// Retry policy for this step.
    #[serde(default)]
    pub retry: Option<RetrySpec>,
    /// Poll schedule for this step.
    #[serde(default)]
    pub poll: Option<PollSpec>,
    /// Give up on this step after this long.
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
}

/// What a fan-in does with an instance that did not succeed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnMissing {
    /// The step does not run; the reason names the instance.
    #[default]
    Fail,
    /// The instance is left out of the list.
    Skip,
}

/// How often a step runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    /// Once per matrix row.
    #[default]
    Row,
    /// Once in the whole run.
    Pipeline,
}

/// A loaded step: the common keys plus the typed `with` block.
pub type Step = StepSpec<ActionWith>;

/// A loaded manifest.
pub type Manifest = ManifestSpec<Step>;

/// Stands for a step in the JSON Schema only: ties `with` to `action`.
pub struct StepSchema;

impl JsonSchema for StepSchema {
    fn schema_name() -> Cow<'static, str> {
        "Step".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut base =
            <StepSpec<serde_json::Map<String, serde_json::Value>>>::json_schema(generator);
        let rules: Vec<serde_json::Value> = Action::ALL
            .iter()
            .map(|action| {
                let with = action.with_schema(generator);
                serde_json::json!({
                    "if": { "properties": { "action": { "const": action.name() } }, "required": ["action"] },
                    "then": { "properties": { "with": with } }
                })
            })
            .collect();
        base.insert("allOf".to_owned(), serde_json::Value::Array(rules));
        base.insert("title".to_owned(), "Step".into());
        base
    }
}

/// The JSON Schema of pipeline manifests, as committed in `schema/pipeline.schema.json`.
pub fn pipeline_schema() -> serde_json::Value {
    let schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<ManifestSpec<StepSchema>>();
    let mut value = schema.to_value();
    allow_extensions(&mut value);
    value
}

/// Lets `x-*` keys in wherever the schema refuses unknown keys, as the
/// loader ignores them there (`manifest::extension`).
fn allow_extensions(schema: &mut serde_json::Value) {
    match schema {
        serde_json::Value::Object(map) => {
            if map.get("additionalProperties") == Some(&serde_json::Value::Bool(false)) {
                map.insert(
                    "patternProperties".to_owned(),
                    serde_json::json!({ "^x-": {} }),
                );
            }
            map.values_mut().for_each(allow_extensions);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(allow_extensions),
        _ => {}
    }
}
