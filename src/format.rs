//! How a command prints its result: one `--format` on every command that
//! prints one, each taking the formats that make sense for it, with
//! `--json` as the short form of `--format json`.
//!
//! A command names the formats it takes with a [`Formats`] type and
//! flattens [`FormatArgs`] of it into its arguments; clap then lists those
//! formats in `--help` and refuses any other with exit 2, and
//! [`FormatArgs::get`] says which was chosen.

use std::marker::PhantomData;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};

/// Every format some command prints in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// For people: tables and text, coloured on a terminal (see `--color`).
    Human,
    /// For programs: JSON (one document, or one object per line for a run's log).
    Json,
    /// Markdown, for a pull-request comment or a job summary.
    Markdown,
    /// GitHub Actions workflow commands (`::error file=…`), for annotations.
    Github,
}

impl OutputFormat {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [OutputFormat; 4] = [
        OutputFormat::Human,
        OutputFormat::Json,
        OutputFormat::Markdown,
        OutputFormat::Github,
    ];

    /// The name written after `--format`.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Human => "human",
            OutputFormat::Json => "json",
            OutputFormat::Markdown => "markdown",
            OutputFormat::Github => "github",
        }
    }

    /// The format called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<OutputFormat> {
        OutputFormat::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// The formats one command prints in, and what each means for it.
pub trait Formats: Clone + Send + Sync + 'static {
    /// The formats taken, `human` first.
    const ALLOWED: &'static [OutputFormat];
    /// The help of `--format`: what each format prints for this command
    /// (clap lists the names after it).
    const HELP: &'static str;
}

/// `--format FORMAT` and `--json`, for a command printing in `F::ALLOWED`.
#[derive(Debug, Clone, clap::Args)]
pub struct FormatArgs<F: Formats> {
    #[arg(long, value_name = "FORMAT", value_parser = parser::<F>(), help = F::HELP)]
    format: Option<OutputFormat>,
    /// Same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    #[arg(skip)]
    formats: PhantomData<F>,
}

impl<F: Formats> FormatArgs<F> {
    /// The format chosen: `--json` counts as `--format json`, and nothing
    /// written is `human`.
    pub fn get(&self) -> OutputFormat {
        if self.json {
            OutputFormat::Json
        } else {
            self.format.unwrap_or(OutputFormat::Human)
        }
    }
}

/// Parses a format name among `F::ALLOWED`; clap's own error lists them.
fn parser<F: Formats>() -> impl TypedValueParser<Value = OutputFormat> {
    // Without a help of their own: clap would switch `--help` to its long,
    // one-flag-per-paragraph layout for them.
    let values = F::ALLOWED.iter().map(|&f| PossibleValue::new(f.name()));
    // The names were checked against `ALLOWED` before the map runs.
    PossibleValuesParser::new(values)
        .map(|name: String| OutputFormat::from_name(&name).unwrap_or(OutputFormat::Human))
}

/// `human` and `json`: what most commands print in.
#[derive(Debug, Clone, Copy)]
pub struct HumanOrJson;

impl Formats for HumanOrJson {
    const ALLOWED: &'static [OutputFormat] = &[OutputFormat::Human, OutputFormat::Json];
    const HELP: &'static str = "How to print the result: `human` text (the default) or `json`";
}

/// Prints `value` on stdout: as pretty JSON for `json`, else as `render` has it.
pub fn print<T: serde::Serialize>(
    format: OutputFormat,
    value: &T,
    render: impl FnOnce(&T) -> String,
) {
    if format == OutputFormat::Json {
        match serde_json::to_string_pretty(value) {
            Ok(text) => crate::outln!("{text}"),
            Err(e) => crate::errln!("error: cannot write the result as JSON: {e}"),
        }
    } else {
        crate::out!("{}", render(value));
    }
}

/// `1 credit`, `2 credits`: `count` with the word that agrees with it.
pub fn count<N>(n: N, one: &str, many: &str) -> String
where
    N: Copy + std::fmt::Display + PartialEq + From<u8>,
{
    format!("{n} {}", if n == N::from(1) { one } else { many })
}

/// `1 credit`, `2 credits`.
pub fn credits<N>(n: N) -> String
where
    N: Copy + std::fmt::Display + PartialEq + From<u8>,
{
    count(n, "credit", "credits")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        format: FormatArgs<HumanOrJson>,
    }

    fn parse(args: &[&str]) -> Result<OutputFormat, String> {
        Cmd::try_parse_from(std::iter::once("cmd").chain(args.iter().copied()))
            .map(|c| c.format.get())
            .map_err(|e| e.kind().to_string())
    }

    #[test]
    fn format_json_and_its_alias_agree_and_other_formats_are_refused() {
        assert_eq!(parse(&[]), Ok(OutputFormat::Human));
        assert_eq!(parse(&["--format", "human"]), Ok(OutputFormat::Human));
        assert_eq!(parse(&["--format", "json"]), Ok(OutputFormat::Json));
        assert_eq!(parse(&["--json"]), Ok(OutputFormat::Json));
        assert!(parse(&["--format", "markdown"]).is_err());
        assert!(parse(&["--format", "json", "--json"]).is_err());
    }

    #[test]
    fn counts_agree_with_their_word() {
        assert_eq!(count(0u32, "credit", "credits"), "0 credits");
        assert_eq!(count(1u32, "credit", "credits"), "1 credit");
        assert_eq!(count(2usize, "clip", "clips"), "2 clips");
        assert_eq!(credits(-1i64), "-1 credits");
    }
}
