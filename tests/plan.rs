//! `sonicflow plan` through the binary: every example pipeline priced, in
//! human and JSON form, plus budgets, price overrides and inputs.

mod common;

use common::{files, run, sonicflow};

#[test]
fn every_example_pipeline_plans_in_human_and_json_form() {
    let pipelines = files("pipelines", ".yaml");
    assert!(pipelines.len() >= 5, "{pipelines:?}");
    for file in pipelines {
        let name = file
            .trim_start_matches("pipelines/")
            .trim_end_matches(".yaml")
            .to_owned();
        let human = run(&["plan", &file]);
        assert!(human.contains("exit: 0\n"), "{human}");
        insta::assert_snapshot!(format!("plan-{name}"), human);
        let json = sonicflow()
            .args(["plan", "--json", &file])
            .output()
            .unwrap();
        assert_eq!(json.status.code(), Some(0));
        let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert!(value["total_credits"].is_u64(), "{value}");
        assert!(value["steps"].is_array(), "{value}");
        insta::assert_json_snapshot!(format!("plan-json-{name}"), value);
    }
}

#[test]
fn totals_add_up_from_the_steps() {
    let out = sonicflow()
        .args(["plan", "--json", "pipelines/nightly.yaml"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3 * 2, "matrix rows × steps");
    let sum: u64 = steps.iter().map(|s| s["credits"].as_u64().unwrap()).sum();
    assert_eq!(v["total_credits"].as_u64(), Some(sum));
    assert_eq!(sum, 3 * (20 + 2));
}

#[test]
fn over_budget_exits_3() {
    let out = run(&[
        "plan",
        "pipelines/cover-and-stems.yaml",
        "--max-credits",
        "40",
    ]);
    assert!(out.contains("exit: 3\n"), "{out}");
    insta::assert_snapshot!("over-budget", out);
}

#[test]
fn price_overrides_from_a_file_and_from_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let table = std::fs::read_to_string("src/prices/builtin.yaml")
        .unwrap()
        .replace("name: live-read", "name: team-rates")
        .replace("create_music: 20", "create_music: 25");
    let path = dir.path().join("prices.yaml");
    std::fs::write(&path, table).unwrap();
    let out = sonicflow()
        .args([
            "plan",
            "--json",
            "pipelines/analyse.yaml",
            "--prices",
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["price_table"]["name"], "team-rates");
    assert_eq!(v["total_credits"], 28);

    let manifest =
        std::fs::read_to_string("pipelines/analyse.yaml").unwrap() + "prices:\n  bpm: 4\n";
    let mpath = dir.path().join("m.yaml");
    std::fs::write(&mpath, manifest).unwrap();
    let out = sonicflow()
        .args(["plan", "--json", mpath.to_str().unwrap()])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total_credits"], 26);
    assert_eq!(v["price_table"]["overridden"], serde_json::json!(["bpm"]));

    std::fs::write(
        &path,
        "name: x\ndate: y\nsource: z\nprices: { create_musik: 1 }\n",
    )
    .unwrap();
    let out = sonicflow()
        .args([
            "plan",
            "pipelines/analyse.yaml",
            "--prices",
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `create_music`?"));
}

#[test]
fn inputs_are_required_for_plan_and_override_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.yaml");
    std::fs::write(&path, "version: 1\nname: needs-input\ninputs:\n  source: {}\nsteps:\n  up:\n    action: upload\n    with: { url: \"${{ inputs.source }}\" }\n").unwrap();
    let p = path.to_str().unwrap();
    let out = sonicflow().args(["plan", p]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass `--input source=…`"));
    let out = sonicflow().args(["validate", p]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "validate accepts inputs given later"
    );
    let out = sonicflow()
        .args(["plan", p, "--input", "source=https://example.com/a.mp3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn matrix_values_are_checked_per_row_at_their_row() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rows.csv"),
        format!("id,prompt\nok,fine\nbad,{}\n", "x".repeat(401)),
    )
    .unwrap();
    let path = dir.path().join("m.yaml");
    std::fs::write(&path, "version: 1\nname: rows\nmatrix: { key: id, file: rows.csv }\nsteps:\n  s:\n    action: create\n    with: { mv: sonic-v5, custom_mode: false, gpt_description_prompt: \"${{ matrix.prompt }}\" }\n").unwrap();
    let out = sonicflow()
        .args(["validate", "--format", "json", path.to_str().unwrap()])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["errors"], 1, "{v}");
    let d = &v["diagnostics"][0];
    assert_eq!(d["code"], "too-long");
    assert!(d["file"].as_str().unwrap().ends_with("rows.csv"), "{d}");
    assert_eq!(d["line"], 3);
    assert!(d["message"].as_str().unwrap().contains("row `bad`"), "{d}");
}

#[test]
fn a_fan_out_over_a_list_in_a_matrix_cell_is_counted_not_estimated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cells.yaml");
    std::fs::write(
        &path,
        "version: 1\nname: cells\ndefaults: { mv: sonic-v5 }\nmatrix:\n  key: id\n  rows:\n    - { id: a, ideas: [rain, snow] }\n    - { id: b, ideas: [sun, wind, fog] }\nsteps:\n  song:\n    action: create\n    for_each: ${{ matrix.ideas }}\n    with: { custom_mode: false, gpt_description_prompt: '${{ item }}' }\n  solo:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: solo }\n",
    )
    .unwrap();
    let file = path.to_str().unwrap();
    let out = sonicflow().args(["plan", "--json", file]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows: Vec<(u64, bool, u64, u64)> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["calls"].as_u64().unwrap(),
                s["calls_expected"].as_bool().unwrap(),
                s["credits"].as_u64().unwrap(),
                s["to_spend"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (2, false, 40, 40),
            (1, false, 20, 20),
            (3, false, 60, 60),
            (1, false, 20, 20)
        ],
        "each row's calls are its list's length, and cost what it will spend"
    );
    assert_eq!(v["total_credits"], 140);
    assert_eq!(v["to_spend"], 140);
    assert_eq!(v["total_expected"], false);
    assert_eq!(v["by_action"]["create"]["calls"], 7);
    let human = run(&["plan", file]);
    assert!(human.contains("\ntotal: 140 credits\n"), "{human}");
    assert!(!human.contains("to spend:"), "nothing is reused: {human}");
}

#[test]
fn an_unset_env_variable_stops_plan_and_run_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("envy.yaml");
    std::fs::write(
        &path,
        "version: 1\nname: envy\ndefaults: { mv: sonic-v5 }\nsteps:\n  song:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: '${{ env.SONICFLOW_TEST_NEVER_SET }}' }\n  wav:\n    action: wav\n    with: { clip: '${{ steps.song.outputs.clip_id }}' }\n",
    )
    .unwrap();
    let out = sonicflow()
        .args(["plan", "--json", path.to_str().unwrap()])
        .env_remove("SONICFLOW_TEST_NEVER_SET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("environment variable `SONICFLOW_TEST_NEVER_SET` is not set"),
        "{stderr}"
    );
    let run = sonicflow()
        .args(["run", "--sandbox", "--log-format", "json"])
        .arg(&path)
        .env_remove("SONICFLOW_TEST_NEVER_SET")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unset-env"), "{stderr}");
    assert!(
        !dir.path().join(".sonicflow").exists(),
        "nothing was started, so no run folder"
    );
}
