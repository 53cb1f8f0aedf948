//! The example workflow in `docs/`: valid YAML with the jobs the docs
//! describe, and every `sonicflow …` command in it accepted by the real
//! command-line parser, so a flag renamed in the code cannot rot there.
#![expect(
    clippy::expect_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

use clap::Parser;
use sonicflow::cli::{Cli, Command};

const WORKFLOW: &str = include_str!("../docs/github-actions.yml");

/// Every `run:` script of every step, by job.
fn scripts(workflow: &serde_yaml::Value) -> Vec<(String, String)> {
    let jobs = workflow["jobs"]
        .as_mapping()
        .expect("the workflow has jobs");
    let mut out = Vec::new();
    for (name, job) in jobs {
        let name = name.as_str().unwrap_or_default().to_owned();
        for step in job["steps"].as_sequence().into_iter().flatten() {
            if let Some(run) = step["run"].as_str() {
                out.push((name.clone(), run.to_owned()));
            }
        }
    }
    out
}

/// The shell lines of a script, continuation lines joined.
fn lines(script: &str) -> Vec<String> {
    script
        .replace("\\\n", " ")
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The `sonicflow` command lines of `job`, as argument lists without
/// what the shell redirects or pipes.
fn commands(workflow: &serde_yaml::Value, job: &str) -> Vec<Vec<String>> {
    scripts(workflow)
        .into_iter()
        .filter(|(name, _)| name == job)
        .flat_map(|(_, script)| lines(&script))
        .filter(|line| line.starts_with("sonicflow "))
        .map(|line| {
            let words = shlex::split(&line).expect("the line is shell words");
            words
                .into_iter()
                .take_while(|w| !matches!(w.as_str(), ">" | ">>" | "|" | "&&" | ";"))
                .collect()
        })
        .collect()
}

#[test]
fn the_workflow_parses_and_has_the_documented_triggers_and_jobs() {
    let workflow: serde_yaml::Value = serde_yaml::from_str(WORKFLOW).expect("valid YAML");
    // Read as YAML 1.2, as GitHub reads it: `on` is a key, not `true`.
    let on = &workflow["on"];
    assert!(on["pull_request"].is_mapping(), "{on:?}");
    assert!(on["schedule"].is_sequence(), "{on:?}");
    assert!(workflow["jobs"]["review"].is_mapping());
    assert!(workflow["jobs"]["nightly"].is_mapping());
}

#[test]
fn every_sonicflow_command_in_the_workflow_parses_with_the_real_cli() {
    let workflow: serde_yaml::Value = serde_yaml::from_str(WORKFLOW).expect("valid YAML");
    let mut seen = 0;
    for job in ["review", "nightly"] {
        for args in commands(&workflow, job) {
            seen += 1;
            if let Err(e) = Cli::try_parse_from(&args) {
                panic!("`{}` does not parse:\n{e}", args.join(" "));
            }
        }
    }
    assert!(seen >= 4, "{seen} sonicflow commands found");
}

#[test]
fn the_review_validates_with_annotations_and_posts_the_markdown_cost_difference() {
    let workflow: serde_yaml::Value = serde_yaml::from_str(WORKFLOW).expect("valid YAML");
    let parsed: Vec<Command> = commands(&workflow, "review")
        .iter()
        .map(|args| Cli::try_parse_from(args).expect("parses").command)
        .collect();
    assert!(parsed.iter().any(|c| matches!(
        c,
        Command::Validate(v) if v.format.get() == sonicflow::format::OutputFormat::Github
    )));
    assert!(parsed.iter().any(|c| matches!(
        c,
        Command::Plan(p) if p.compare.is_some()
            && p.format.get() == sonicflow::format::OutputFormat::Markdown
    )));
    assert!(
        WORKFLOW.contains("startswith(\"<!-- sonicflow-cost -->\")"),
        "the comment is found by the marker the Markdown starts with"
    );
}

#[test]
fn the_nightly_job_runs_the_batch_with_a_summary_and_keeps_the_run_folder() {
    let workflow: serde_yaml::Value = serde_yaml::from_str(WORKFLOW).expect("valid YAML");
    let runs: Vec<Box<sonicflow::commands::run::RunArgs>> = commands(&workflow, "nightly")
        .iter()
        .filter_map(
            |args| match Cli::try_parse_from(args).expect("parses").command {
                Command::Run(run) => Some(run),
                _ => None,
            },
        )
        .collect();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    let file = run.file.as_ref().expect("the run names its manifest");
    assert!(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(file)
            .is_file(),
        "{}",
        file.display()
    );
    assert!(run.summary_md.is_some() && run.download);
    let out = run.out.as_ref().expect("the run folder is named");
    let steps = workflow["jobs"]["nightly"]["steps"]
        .as_sequence()
        .expect("steps");
    let upload = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact"))
        })
        .expect("the run folder is uploaded");
    let path = upload["with"]["path"].as_str().unwrap_or_default();
    assert!(out.starts_with(path.trim_end_matches('/')), "{path}");
    assert_eq!(upload["if"].as_str(), Some("always()"));
}
