//! The committed JSON Schema cannot drift from the code, and every example
//! pipeline is valid against it.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

use std::path::Path;

const COMMITTED: &str = "schema/pipeline.schema.json";

#[test]
fn committed_pipeline_schema_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let generated = sonicflow::commands::schema::pipeline_schema_text();
    let committed = std::fs::read_to_string(root.join(COMMITTED)).unwrap_or_default();
    if generated != committed {
        let diff: Vec<String> = generated
            .lines()
            .zip(committed.lines().chain(std::iter::repeat("")))
            .enumerate()
            .filter(|(_, (g, c))| g != c)
            .take(10)
            .map(|(i, (g, c))| format!("line {}:\n  committed: {c}\n  generated: {g}", i + 1))
            .collect();
        panic!(
            "{COMMITTED} is out of date with the manifest types.\n{}\n\nregenerate it with:\n  cargo run -- schema > {COMMITTED}",
            diff.join("\n")
        );
    }
}

fn validator() -> jsonschema::Validator {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(COMMITTED)).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

/// The document as an editor checks it: merge keys (`<<: *anchor`) applied.
fn as_json(path: &Path) -> serde_json::Value {
    let mut yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    yaml.apply_merge().unwrap();
    serde_json::to_value(yaml).unwrap()
}

#[test]
fn every_example_pipeline_is_valid_against_the_committed_schema() {
    let validator = validator();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with(
                    "# yaml-language-server: $schema=../schema/pipeline.schema.json\n"
                ),
                "{} must start with the schema line",
                path.display()
            );
            let errors: Vec<String> = validator
                .iter_errors(&as_json(&path))
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 5);
}

#[test]
fn the_schema_ties_with_to_action() {
    let validator = validator();
    let doc = |with: serde_json::Value| serde_json::json!({"version": 1, "name": "x", "steps": {"a": {"action": "cover", "with": with}}});
    assert!(validator.is_valid(&doc(serde_json::json!({"clip": "c", "audio_weight": 0.5}))));
    assert!(
        !validator.is_valid(&doc(serde_json::json!({"clip": "c", "tgas": "x"}))),
        "unknown key in `with`"
    );
    assert!(
        !validator.is_valid(&doc(
            serde_json::json!({"clip": "c", "audio_weight": "loud"})
        )),
        "wrong type"
    );
    assert!(
        validator.is_valid(&doc(
            serde_json::json!({"clip": "c", "audio_weight": "${{ matrix.w }}"})
        )),
        "expressions are allowed"
    );
    assert!(
        !validator.is_valid(&doc(serde_json::json!({"audio_weight": 0.5}))),
        "`clip` is required for cover"
    );
    let wav = serde_json::json!({"version": 1, "name": "x", "steps": {"a": {"action": "wav", "with": {"clip": "c", "mv": "sonic-v5"}}}});
    assert!(!validator.is_valid(&wav), "wav takes no model");
}

#[test]
fn the_schema_allows_extension_keys_needs_as_one_id_and_key() {
    let validator = validator();
    let doc = serde_json::json!({
        "version": 1, "name": "x",
        "x-common": {"anything": [1, 2]},
        "limits": {"max_credits": 10, "x-why": "a test"},
        "retry": {"backoff": {"factor": 2, "x-n": 1}},
        "inputs": {"styles": {"default": ["jazz"], "x-doc": "styles"}},
        "matrix": {"key": "id", "file": "${{ inputs.rows }}", "x-note": "n"},
        "steps": {
            "up": {"action": "upload", "with": {"url": "https://example.com/a.mp3", "x-w": 1}},
            "cover": {
                "action": "cover", "needs": "up", "x-note": "after up",
                "for_each": "${{ inputs.styles }}",
                "with": {"clip": "${{ steps.up.outputs.clip_id }}", "tags": "${{ item }}"}
            },
            "split": {
                "action": "stems_full", "needs": ["cover"],
                "for_each": "${{ steps.cover.outputs.clips }}", "key": "clip_id",
                "with": {"clip": "${{ item.clip_id }}"}
            }
        }
    });
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let mut unknown = doc.clone();
    unknown["limits"]["y-why"] = "not an extension".into();
    assert!(
        !validator.is_valid(&unknown),
        "only `x-` keys are extensions"
    );
    let mut bad_needs = doc;
    bad_needs["steps"]["cover"]["needs"] = 3.into();
    assert!(
        !validator.is_valid(&bad_needs),
        "needs is an id or a list of ids"
    );
}
