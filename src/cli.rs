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
    /// Print the JSON Schema of pipeline manifests.
    Schema(commands::schema::SchemaArgs),
}

/// Parses the process arguments and runs the chosen command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Schema(args) => commands::schema::run(&args),
    };
    ExitCode::from(code)
}
