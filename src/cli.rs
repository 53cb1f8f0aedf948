//! Command-line interface: argument parsing and dispatch to `commands`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands;

/// Declarative batch pipelines for the MusicAPI Sonic music-generation API.
#[derive(Debug, Parser)]
#[command(name = "sonicflow", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check pipeline manifests; reports every problem with file:line:col.
    Validate(commands::validate::ValidateArgs),
    /// Dry run: price every step in credits without sending anything.
    Plan(commands::plan::PlanArgs),
    /// Draw the pipeline's steps and what they cost as a graph: Mermaid (renders on GitHub) or DOT.
    Graph(commands::graph::GraphArgs),
    /// Run a pipeline against the API, or a local sandbox with `--sandbox`.
    Run(Box<commands::run::RunArgs>),
    /// Write a run folder's report.html (clips to listen to, credits, timeline, failures); also for a running or killed run.
    Report(commands::report::ReportArgs),
    /// One results.json and report.html of every shard of a run (`--run-id` with `--shard K/N`).
    Merge(commands::merge::MergeArgs),
    /// Show where a run stands: done, in flight, in doubt, failed, credits charged.
    Status(commands::status::StatusArgs),
    /// Print the JSON Schema of pipeline manifests, or of `results.json` with `--results`.
    Schema(commands::schema::SchemaArgs),
    /// Serve the local MusicAPI simulator; prints its base URL first.
    Sandbox(commands::sandbox::SandboxArgs),
    /// Print the credit balance of the configured API key.
    Credits(commands::credits::CreditsArgs),
    /// Print the price table in use with its date and age; `prices learn` makes a newer one from what runs were charged.
    Prices(commands::prices::PricesArgs),
    /// Publish a run folder's files, results.json and report.html to a bucket, sending only what is not there yet.
    Publish(commands::publish::PublishArgs),
    /// Remove the pipeline lock a dead run left behind in a state folder.
    Unlock(commands::unlock::UnlockArgs),
    /// Write a commented pipeline to start from (`--template nightly|cover|create`), ready to validate, plan and run.
    Init(commands::init::InitArgs),
    /// List past runs: when, how long, status, credits and folder, newest first.
    Runs(commands::runs::RunsArgs),
    /// Remove old run folders and their downloads (`--older-than 30d` or `--keep-last N`), keeping what is still needed.
    Clean(commands::clean::CleanArgs),
}

/// Parses the process arguments and runs the chosen command.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                crate::exit::INVALID
            } else {
                crate::exit::SUCCESS
            });
        }
    };
    let code = match cli.command {
        Command::Validate(args) => commands::validate::run(&args),
        Command::Plan(args) => commands::plan::run(&args),
        Command::Graph(args) => commands::graph::run(&args),
        Command::Run(args) => commands::run::run(&args),
        Command::Report(args) => commands::report::run(&args),
        Command::Merge(args) => commands::merge::run(&args),
        Command::Status(args) => commands::status::run(&args),
        Command::Schema(args) => commands::schema::run(&args),
        Command::Sandbox(args) => commands::sandbox::run(&args),
        Command::Credits(args) => commands::credits::run(&args),
        Command::Prices(args) => commands::prices::run(&args),
        Command::Publish(args) => commands::publish::run(&args),
        Command::Unlock(args) => commands::unlock::run(&args),
        Command::Init(args) => commands::init::run(&args),
        Command::Runs(args) => commands::runs::run(&args),
        Command::Clean(args) => commands::clean::run(&args),
    };
    // Output that a successful command could not write was lost: not a success.
    if code == crate::exit::SUCCESS && crate::output::stdout_lost() {
        return ExitCode::from(crate::exit::FAILED_STEPS);
    }
    ExitCode::from(code)
}
