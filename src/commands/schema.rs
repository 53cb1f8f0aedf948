//! `sonicflow schema`: print the JSON Schema of pipeline manifests.

#[derive(Debug, clap::Args)]
pub struct SchemaArgs {}

/// The schema text exactly as committed in `schema/pipeline.schema.json`.
pub fn pipeline_schema_text() -> String {
    let value = crate::manifest::spec::pipeline_schema();
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

pub fn run(_args: &SchemaArgs) -> u8 {
    print!("{}", pipeline_schema_text());
    crate::exit::SUCCESS
}
