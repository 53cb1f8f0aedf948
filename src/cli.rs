//! Command-line interface: argument parsing and dispatch to `commands`.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::commands;
use crate::output::{ColorChoice, Settings};

/// Declarative batch pipelines for the MusicAPI Sonic music-generation API.
#[derive(Debug, Parser)]
#[command(
    name = "sonicflow",
    version,
    about,
    max_term_width = 100,
    after_help = crate::cli::after_help(),
    subcommand_help_heading = "Commands"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// The options every command takes.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// When to colour output: `auto` (a terminal, unless `NO_COLOR` is set;
    /// `CLICOLOR_FORCE` forces it), `always` or `never`.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
    /// Print only errors, warnings and the result itself.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Say more: `-v` logs each API request and the engine's decisions,
    /// `-vv` more detail (`RUST_LOG` chooses exactly what).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check pipeline manifests (or the manifests in a folder); reports every problem with file:line:col.
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
    /// Print the credit balance of the configured API key (or of a sandbox's with `--sandbox`).
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
    /// Print a shell completion script for bash, zsh, fish, elvish or PowerShell.
    Completions(CompletionsArgs),
    /// Print the manual page (`sonicflow man | man -l -`), or write one per command with `--out DIR`.
    Man(ManArgs),
}

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write `sonicflow.1` and a `sonicflow-COMMAND.1` per command into DIR instead of printing `sonicflow.1`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
}

/// The commands by topic, as the top-level `--help` lists them; a test
/// checks that every command is in exactly one group.
pub const GROUPS: &[(&str, &[&str])] = &[
    (
        "Write and check a pipeline",
        &["init", "validate", "plan", "graph"],
    ),
    (
        "Run it and follow it",
        &["run", "status", "runs", "report", "merge", "publish"],
    ),
    ("Look after the state", &["clean", "unlock"]),
    ("The service", &["credits", "prices", "sandbox", "schema"]),
    ("Set up the shell", &["completions", "man", "help"]),
];

/// The top-level help's layout: the commands under their topics, then the options.
fn help_template(command: &clap::Command) -> String {
    let width = command
        .get_subcommands()
        .map(|c| c.get_name().len())
        .max()
        .unwrap_or(0);
    let mut text = String::from("{about-with-newline}\n{usage-heading} {usage}\n");
    for (topic, names) in GROUPS {
        text.push_str(&format!("\n{topic}:\n"));
        for name in *names {
            let about = command
                .find_subcommand(name)
                .and_then(|c| c.get_about())
                .map(|a| a.to_string())
                .unwrap_or_default();
            let indent = " ".repeat(width + 4);
            let options = textwrap::Options::new(100)
                .initial_indent("")
                .subsequent_indent(&indent);
            let lines = textwrap::wrap(&about, options.width(100 - 2 - width - 2));
            let about = lines.join("\n");
            text.push_str(&format!("  {name:<width$}  {about}\n"));
        }
    }
    text.push_str("\nOptions:\n{options}{after-help}");
    text
}

/// The command line, with the top-level help grouped by topic.
pub fn command() -> clap::Command {
    let mut command = Cli::command();
    command.build();
    let template = help_template(&command);
    command.help_template(template)
}

/// Examples and exit codes, after the top-level `--help`.
fn after_help() -> String {
    let mut text = String::from(
        "Examples:\n  \
         sonicflow init --template cover                 # a commented pipeline to start from\n  \
         sonicflow validate pipelines/                   # check every manifest in a folder\n  \
         sonicflow plan pipelines/nightly.yaml           # what it would cost, nothing sent\n  \
         sonicflow run pipelines/nightly.yaml --sandbox  # try it on a local sandbox, no credits\n\n\
         Exit codes:\n",
    );
    for (code, meaning) in crate::exit::MEANINGS {
        text.push_str(&format!("  {code:>3}  {meaning}\n"));
    }
    text.push_str("\n`sonicflow help COMMAND` (or `COMMAND --help`) says more about each command.");
    text
}

/// Parses the process arguments and runs the chosen command.
pub fn main() -> ExitCode {
    let color = early_color();
    let command = command().color(match color {
        ColorChoice::Auto => clap::ColorChoice::Auto,
        ColorChoice::Always => clap::ColorChoice::Always,
        ColorChoice::Never => clap::ColorChoice::Never,
    });
    let cli = match command
        .try_get_matches()
        .and_then(|mut m| Cli::from_arg_matches_mut(&mut m))
    {
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
    let verbosity = if cli.global.quiet {
        -1
    } else {
        i8::try_from(cli.global.verbose).unwrap_or(i8::MAX)
    };
    crate::output::configure(Settings {
        color: cli.global.color,
        verbosity,
    });
    crate::output::init_tracing();
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
        Command::Completions(args) => completions(&args),
        Command::Man(args) => man(&args),
    };
    // Output that a successful command could not write was lost: not a success.
    if code == crate::exit::SUCCESS && crate::output::stdout_lost() {
        return ExitCode::from(crate::exit::FAILED_STEPS);
    }
    ExitCode::from(code)
}

/// `--color` as written, read before the arguments are parsed so that
/// clap's own help and errors follow it too; the parsed value decides the rest.
fn early_color() -> ColorChoice {
    let mut args = std::env::args_os().skip(1);
    let mut choice = ColorChoice::Auto;
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy().into_owned();
        let value = match arg.strip_prefix("--color") {
            Some("") => args.next().map(|v| v.to_string_lossy().into_owned()),
            Some(rest) => rest.strip_prefix('=').map(str::to_owned),
            None => None,
        };
        match value.as_deref() {
            Some("always") => choice = ColorChoice::Always,
            Some("never") => choice = ColorChoice::Never,
            Some("auto") => choice = ColorChoice::Auto,
            _ => {}
        }
        if arg == "--" {
            break;
        }
    }
    choice
}

fn completions(args: &CompletionsArgs) -> u8 {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command(), "sonicflow", &mut script);
    crate::out!("{}", String::from_utf8_lossy(&script));
    crate::exit::SUCCESS
}

fn man(args: &ManArgs) -> u8 {
    let command = Cli::command();
    match &args.out {
        None => match render_man(&command) {
            Ok(page) => {
                crate::out!("{}", String::from_utf8_lossy(&page));
                crate::exit::SUCCESS
            }
            Err(e) => {
                crate::errln!("error: cannot write the manual page: {e}");
                crate::exit::FAILED_STEPS
            }
        },
        Some(dir) => match write_man_pages(&command, dir) {
            Ok(written) => {
                if !crate::output::quiet() {
                    crate::errln!(
                        "wrote {} into {}",
                        crate::format::count(written as u64, "manual page", "manual pages"),
                        dir.display()
                    );
                }
                crate::exit::SUCCESS
            }
            Err(e) => {
                crate::errln!(
                    "error: cannot write the manual pages into `{}`: {e}",
                    dir.display()
                );
                crate::errln!("help: give a folder you can write to, e.g. `--out target/man`");
                crate::exit::INVALID
            }
        },
    }
}

fn render_man(command: &clap::Command) -> std::io::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    Ok(page)
}

/// `sonicflow.1`, then `sonicflow-COMMAND.1` for each command; how many were written.
fn write_man_pages(command: &clap::Command, dir: &std::path::Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut command = command.clone();
    command.build();
    std::fs::write(dir.join("sonicflow.1"), render_man(&command)?)?;
    let mut written = 1;
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = format!("sonicflow-{}", sub.get_name());
        let page = render_man(&sub.clone().name(name.clone()))?;
        std::fs::write(dir.join(format!("{name}.1")), page)?;
        written += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn every_command_is_listed_under_one_topic() {
        let mut command = super::Cli::command();
        command.build();
        let mut listed: Vec<&str> = super::GROUPS
            .iter()
            .flat_map(|(_, n)| n.iter().copied())
            .collect();
        let mut commands: Vec<&str> = command.get_subcommands().map(|c| c.get_name()).collect();
        listed.sort_unstable();
        commands.sort_unstable();
        assert_eq!(listed, commands);
    }
}
