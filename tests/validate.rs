//! `sonicflow validate` through the binary: one broken manifest per kind of
//! problem, with the whole rendered output and exit code pinned.

mod common;

use std::collections::BTreeSet;

use common::{files, run, sonicflow};

#[test]
fn every_invalid_fixture_renders_its_diagnostics() {
    let fixtures = files("tests/fixtures/invalid", ".yaml");
    assert!(fixtures.len() >= 20, "{fixtures:?}");
    for file in fixtures {
        let name = file
            .rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(".yaml")
            .to_owned();
        let output = run(&["validate", &file]);
        assert!(output.contains("\nexit: 2\n"), "{output}");
        insta::assert_snapshot!(format!("invalid-{name}"), output);
    }
}

#[test]
fn every_diagnostic_kind_has_a_fixture() {
    let mut seen = BTreeSet::new();
    for file in files("tests/fixtures/invalid", ".yaml") {
        let out = sonicflow()
            .args(["validate", "--format", "json", &file])
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for d in doc["diagnostics"].as_array().unwrap() {
            seen.insert(d["code"].as_str().unwrap().to_owned());
        }
    }
    let required = [
        "yaml-syntax",
        "yaml-limit",
        "multiple-documents",
        "unknown-key",
        "duplicate-step",
        "unknown-action",
        "unknown-step",
        "unknown-output",
        "invalid-reference",
        "cycle",
        "for-each-not-list",
        "key-field",
        "item-outside-for-each",
        "unknown-matrix-column",
        "matrix-file",
        "matrix-key",
        "required-field",
        "missing-field",
        "too-long",
        "out-of-range",
        "unsupported-by-model",
        "unknown-model",
        "clip-provenance",
        "mashup-clips",
        "secret-env",
        "expression-syntax",
        "unknown-input",
        "type-mismatch",
        "invalid-type",
        "invalid-value",
    ];
    let missing: Vec<_> = required.iter().filter(|c| !seen.contains(**c)).collect();
    assert!(
        missing.is_empty(),
        "no fixture produces {missing:?}; seen {seen:?}"
    );
}

#[test]
fn json_and_github_formats() {
    let file = "tests/fixtures/invalid/unknown-reference.yaml";
    insta::assert_snapshot!("format-json", run(&["validate", "--format", "json", file]));
    insta::assert_snapshot!(
        "format-github",
        run(&["validate", "--format", "github", file])
    );
}

#[test]
fn several_files_at_once_and_clean_files_pass() {
    let out = run(&[
        "validate",
        "pipelines/analyse.yaml",
        "pipelines/nightly.yaml",
        "tests/fixtures/invalid/cycle.yaml",
    ]);
    insta::assert_snapshot!("several-files", out);
    let out = run(&["validate", "pipelines/analyse.yaml"]);
    assert!(out.contains("exit: 0\n"), "{out}");
}

#[test]
fn unreadable_file_and_bad_flags() {
    insta::assert_snapshot!("missing-file", run(&["validate", "pipelines/nope.yaml"]));
    insta::assert_snapshot!(
        "bad-input-flag",
        run(&["validate", "pipelines/persona.yaml", "--input", "novalue"])
    );
    insta::assert_snapshot!(
        "unknown-input-flag",
        run(&[
            "validate",
            "pipelines/persona.yaml",
            "--input",
            "voise=https://example.com/v.mp3"
        ])
    );
}

#[test]
fn values_given_at_run_time_are_warnings_for_validate_and_errors_for_plan_and_run() {
    for name in ["unset-env", "missing-input"] {
        let file = format!("tests/fixtures/warnings/{name}.yaml");
        let out = sonicflow()
            .env_remove("SONICFLOW_SONG_IDEA")
            .args(["validate", &file])
            .output()
            .unwrap();
        let validate = common::render(&["validate", &file], &out);
        assert!(validate.contains("exit: 0\n"), "{validate}");
        insta::assert_snapshot!(format!("warning-{name}"), validate);
        for command in [
            vec!["plan", file.as_str()],
            vec!["run", file.as_str(), "--sandbox"],
        ] {
            let out = sonicflow()
                .env_remove("SONICFLOW_SONG_IDEA")
                .args(&command)
                .output()
                .unwrap();
            let rendered = common::render(&command, &out);
            assert!(rendered.contains("exit: 2\n"), "{rendered}");
            assert!(rendered.contains(" × "), "{rendered}");
        }
    }
    // Given a value, neither is said at all.
    let out = sonicflow()
        .env("SONICFLOW_SONG_IDEA", "rain")
        .args(["validate", "tests/fixtures/warnings/unset-env.yaml"])
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty());
    let out = run(&[
        "validate",
        "tests/fixtures/warnings/missing-input.yaml",
        "--input",
        "source=https://example.com/a.mp3",
    ]);
    assert!(out.ends_with("--- stderr\n"), "{out}");
}
