//! `sonicflow schema`: print the JSON Schema of pipeline manifests.

#[derive(Debug, clap::Args)]
pub struct SchemaArgs {}

pub fn run(_args: &SchemaArgs) -> u8 {
    println!("{{}}");
    crate::exit::SUCCESS
}
