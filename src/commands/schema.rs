//! `sonicflow schema`: print the JSON Schema of pipeline manifests, or with
//! `--results` the schema of the `results.json` a run writes.

#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// Print the schema of `results.json` instead of the pipeline schema.
    #[arg(long)]
    pub results: bool,
}

/// The schema text exactly as committed in `schema/pipeline.schema.json`.
pub fn pipeline_schema_text() -> String {
    pretty(&crate::manifest::spec::pipeline_schema())
}

/// The schema text exactly as committed in `schema/results.schema.json`.
pub fn results_schema_text() -> String {
    pretty(&crate::report::results_schema())
}

fn pretty(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

pub fn run(args: &SchemaArgs) -> u8 {
    if args.results {
        crate::out!("{}", results_schema_text());
    } else {
        crate::out!("{}", pipeline_schema_text());
    }
    crate::exit::SUCCESS
}
