//! One module per group of endpoints. POST handlers only validate and
//! describe their work; `pipeline` charges and performs it.

pub(crate) mod batch;
pub(crate) mod create;
pub(crate) mod generate;
pub(crate) mod reads;
pub(crate) mod tools;
pub(crate) mod upload;

use super::pipeline::Validate;

/// Every paid POST endpoint with its validator.
pub(crate) const POSTS: &[(&str, Validate)] = &[
    ("/api/v1/sonic/create", create::create),
    ("/api/v1/sonic/upload", upload::upload),
    ("/api/v1/sonic/upload-extend", upload::upload_extend),
    ("/api/v1/sonic/upload-cover", upload::upload_cover),
    ("/api/v1/sonic/persona", tools::persona),
    ("/api/v1/sonic/sample", generate::sample),
    ("/api/v1/sonic/mashup", generate::mashup),
    ("/api/v1/sonic/replace-section", generate::replace_section),
    ("/api/v1/sonic/bpm", tools::bpm),
    ("/api/v1/sonic/vox", tools::vox),
    ("/api/v1/sonic/wav", tools::wav),
    ("/api/v1/sonic/midi", tools::midi),
    ("/api/v1/sonic/aligned-lyrics", tools::aligned_lyrics),
    ("/api/v1/sonic/upsample-tags", tools::upsample_tags),
    ("/api/v1/sonic/stems/basic", generate::stems_basic),
    ("/api/v1/sonic/stems/full", generate::stems_full),
    ("/api/v1/sonic/lyrics", tools::lyrics),
    ("/api/v1/sonic/batch", batch::submit),
];
