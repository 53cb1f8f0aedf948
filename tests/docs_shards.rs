//! The shard examples in `docs/`: a GitHub Actions matrix and a Kubernetes
//! Indexed Job. Both are valid YAML; every `sonicflow` command in them,
//! with the matrix value or the completion index put in as CI would, is
//! accepted by the real command-line parser; and the shards they start are
//! every shard 1..N of one run id, merged after.
#![expect(
    clippy::expect_used,
    reason = "helpers outside `#[test]` functions fail the test by panicking, as assertions do"
)]

use clap::Parser;
use serde::Deserialize;
use sonicflow::cli::{Cli, Command};
use sonicflow::journal::Shard;

const ACTIONS: &str = include_str!("../docs/github-actions-shards.yml");
const KUBERNETES: &str = include_str!("../docs/kubernetes-indexed-job.yaml");

/// The `sonicflow` command lines of a shell script, as argument lists
/// (continuation lines joined, folded lines too).
fn commands(script: &str) -> Vec<Vec<String>> {
    script
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("sonicflow "))
        .map(|l| shlex::split(l).expect("the line is shell words"))
        .collect()
}

fn parse(args: &[String]) -> Command {
    match Cli::try_parse_from(args) {
        Ok(cli) => cli.command,
        Err(e) => panic!("`{}` does not parse:\n{e}", args.join(" ")),
    }
}

/// The shards `runs` start, sorted, checking each names a run id and a state.
fn shards_of(runs: &[Command]) -> Vec<Shard> {
    let mut shards: Vec<Shard> = runs
        .iter()
        .filter_map(|c| match c {
            Command::Run(run) => {
                assert!(run.run_id.is_some(), "a shard names its run id");
                let state = run.history.state.as_ref().expect("a shared state");
                assert!(state.contains("STATE"), "{state:?}");
                run.history.shard
            }
            _ => None,
        })
        .collect();
    shards.sort_by_key(|s| s.index);
    shards
}

fn every_shard_of(n: u32) -> Vec<Shard> {
    (1..=n).map(|index| Shard { index, count: n }).collect()
}

#[test]
fn the_actions_matrix_runs_every_shard_once_then_merges() {
    let workflow: serde_yaml::Value = serde_yaml::from_str(ACTIONS).expect("valid YAML");
    let shard_job = &workflow["jobs"]["shard"];
    let values: Vec<u64> = shard_job["strategy"]["matrix"]["shard"]
        .as_sequence()
        .expect("a matrix of shards")
        .iter()
        .filter_map(serde_yaml::Value::as_u64)
        .collect();
    let scripts = |job: &serde_yaml::Value| -> Vec<String> {
        job["steps"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|s| s["run"].as_str().map(str::to_owned))
            .collect()
    };
    let mut runs = Vec::new();
    for value in &values {
        for script in scripts(shard_job) {
            let script = script.replace("${{ matrix.shard }}", &value.to_string());
            for args in commands(&script) {
                let command = parse(&args);
                if let Command::Plan(plan) = &command {
                    assert_eq!(plan.history.shard.map(|s| u64::from(s.index)), Some(*value));
                }
                runs.push(command);
            }
        }
    }
    let n = u32::try_from(values.len()).expect("a few shards");
    assert_eq!(shards_of(&runs), every_shard_of(n));

    let merge_job = &workflow["jobs"]["merge"];
    assert_eq!(merge_job["needs"].as_str(), Some("shard"));
    let merged: Vec<Command> = scripts(merge_job)
        .iter()
        .flat_map(|s| commands(s))
        .map(|args| parse(&args))
        .collect();
    assert!(
        merged
            .iter()
            .any(|c| matches!(c, Command::Merge(m) if m.run_id == "$GITHUB_RUN_ID"))
    );
    assert!(merged.iter().any(|c| matches!(c, Command::Status(_))));
}

#[derive(Debug, Deserialize)]
struct Job {
    spec: JobSpec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobSpec {
    completion_mode: Option<String>,
    completions: Option<u32>,
    template: serde_yaml::Value,
}

#[test]
fn the_indexed_job_runs_shard_index_plus_one_of_its_completions_then_merges() {
    let jobs: Vec<Job> = serde_yaml::Deserializer::from_str(KUBERNETES)
        .map(|doc| Job::deserialize(doc).expect("a Job"))
        .collect();
    assert_eq!(jobs.len(), 2, "the shards' Job and the merge Job");
    let args_of = |job: &Job| -> Vec<String> {
        job.spec.template["spec"]["containers"][0]["args"]
            .as_sequence()
            .expect("the container's args")
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect()
    };
    let shards = &jobs[0];
    assert_eq!(shards.spec.completion_mode.as_deref(), Some("Indexed"));
    let n = shards.spec.completions.expect("a number of completions");
    let mut runs = Vec::new();
    for index in 0..n {
        for script in args_of(shards) {
            // What `sh -c` makes of the index Kubernetes sets in each pod.
            let script = script.replace("$((JOB_COMPLETION_INDEX+1))", &(index + 1).to_string());
            runs.extend(commands(&script).iter().map(|args| parse(args)));
        }
    }
    assert_eq!(shards_of(&runs), every_shard_of(n));
    let merged: Vec<Command> = args_of(&jobs[1])
        .iter()
        .flat_map(|s| commands(s))
        .map(|args| parse(&args))
        .collect();
    assert!(matches!(merged.as_slice(), [Command::Merge(m)] if m.run_id == "$SONICFLOW_RUN_ID"));
}
