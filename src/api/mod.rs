//! The typed HTTP client for the MusicAPI Sonic API.
//!
//! This module owns the wire: configuration (base URL, secret key, timeouts),
//! request and response types for every endpoint, tolerant decoding where the
//! service is known to vary, and the classification of failures into the
//! error classes the engine acts on.
//!
//! It is only a client. It knows nothing about manifests, plans or the
//! sandbox; callers decide what to do with an error from its class.

mod client;
mod config;
mod decode;
mod error;
mod poll;
mod requests;
mod responses;
mod text;

pub use client::{ANSWER_CAP, Client, ERROR_CAP, LISTS_CAP, STATUS_CAP};
pub(crate) use config::resolve_base_url;
pub use config::{ApiKey, ClientConfig, ConfigError, DEFAULT_BASE_URL};
pub(crate) use error::describe_transport;
pub use error::{ApiError, ErrorClass, MAX_RETRY_AFTER};
pub use poll::{Clip, ClipState, PairKind, TaskItem, TaskStatus};
pub use requests::{
    BatchRequest, CreateRequest, GenerationFields, MashupRequest, PersonaRequest,
    ReplaceSectionRequest, SampleRequest, TaskType, UploadCoverRequest, UploadExtendRequest,
    VoxRequest,
};
pub use responses::{
    AlignedLyrics, AlignedWord, BatchStatus, BatchSubmitted, BatchTask, BatchTaskStatus, Bpm,
    Credits, GeneratedLyrics, Lyrics, Midi, MidiInstrument, MidiNote, PersonaCreated,
    StepsSubmitted, Submitted, UploadStep, UploadedClip, UpsampledTags, Vox, Wav,
};
pub use text::human_bytes;
pub(crate) use text::one_line;
