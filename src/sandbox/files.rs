//! Small, valid media files served at the URLs results point to.
//!
//! * `.wav` — RIFF PCM, 8 kHz, mono, 8-bit: a quiet tone exactly as long as
//!   the clip (8 000 bytes per second).
//! * `.mp3` — real MPEG-2 Layer III frames (8 kbit/s, 16 kHz, mono) whose
//!   zeroed side information decodes to silence; 36 bytes per 36 ms.
//! * `.mid` — a Standard MIDI File (format 0) with the notes `/midi` reports.
//! * `.jpeg` — a 1×1 grey baseline JPEG.

use sha2::{Digest, Sha256};

/// A 1×1 mid-grey baseline JPEG: one all-ones quantisation table, one-code
/// Huffman tables (DC difference 0, end of block) and a two-bit scan.
pub(crate) const JPEG: &[u8] = &{
    let head: [u8; 4] = [0xFF, 0xD8, 0xFF, 0xDB];
    let mut out = [0u8; 4 + 3 + 64 + 13 + 22 + 22 + 10 + 1 + 2];
    let mut i = 0;
    while i < 4 {
        out[i] = head[i];
        i += 1;
    }
    out[4] = 0x00;
    out[5] = 0x43;
    out[6] = 0x00;
    let mut q = 0;
    while q < 64 {
        out[7 + q] = 1;
        q += 1;
    }
    let rest: [u8; 13 + 22 + 22 + 10 + 1 + 2] = [
        0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00, // SOF0
        0xFF, 0xC4, 0x00, 0x14, 0x00, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0x00, // DHT DC
        0xFF, 0xC4, 0x00, 0x14, 0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0x00, // DHT AC
        0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00, // SOS
        0x3F, // scan: DC "0", EOB "0", padded with ones
        0xFF, 0xD9, // EOI
    ];
    let mut r = 0;
    while r < rest.len() {
        out[71 + r] = rest[r];
        r += 1;
    }
    out
};

const WAV_RATE: u32 = 8_000;

/// A WAV file of `seconds` of a quiet 440 Hz tone.
pub(crate) fn wav(seconds: f64) -> Vec<u8> {
    let samples = (seconds.max(0.0) * f64::from(WAV_RATE)).round() as u32;
    let mut out = Vec::with_capacity(44 + samples as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + samples).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&WAV_RATE.to_le_bytes());
    out.extend_from_slice(&WAV_RATE.to_le_bytes()); // byte rate: 1 byte per sample
    out.extend_from_slice(&1u16.to_le_bytes()); // block align
    out.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&samples.to_le_bytes());
    let step = 2.0 * std::f64::consts::PI * 440.0 / f64::from(WAV_RATE);
    // 8-bit PCM is unsigned around 128.
    out.extend((0..samples).map(|n| (128.0 + 20.0 * (step * f64::from(n)).sin()).round() as u8));
    out
}

/// Silent MP3 frames covering `seconds`.
pub(crate) fn mp3(seconds: f64) -> Vec<u8> {
    const FRAME: usize = 36;
    const FRAME_SECONDS: f64 = 576.0 / 16_000.0;
    let frames = (seconds.max(0.0) / FRAME_SECONDS).ceil() as usize;
    let mut out = vec![0u8; frames * FRAME];
    for frame in out.chunks_mut(FRAME) {
        // Sync, MPEG-2, Layer III, no CRC; 8 kbit/s, 16 kHz; mono.
        frame[..4].copy_from_slice(&[0xFF, 0xF3, 0x18, 0xC0]);
    }
    out
}

/// One note of the simulated transcription.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Note {
    pub pitch: u8,
    pub start: f64,
    pub end: f64,
    pub velocity: f64,
}

/// Eight half-second notes of a pentatonic line, chosen by the clip id.
pub(crate) fn midi_notes(clip_id: &str) -> Vec<Note> {
    const SCALE: [u8; 5] = [60, 62, 64, 67, 69];
    let digest = Sha256::digest(clip_id.as_bytes());
    (0..8)
        .map(|i| Note {
            pitch: SCALE[usize::from(digest[i]) % SCALE.len()],
            start: i as f64 * 0.5,
            end: i as f64 * 0.5 + 0.45,
            velocity: 0.5 + f64::from(digest[i + 8] % 50) / 100.0,
        })
        .collect()
}

/// A format-0 Standard MIDI File playing [`midi_notes`].
pub(crate) fn midi(clip_id: &str) -> Vec<u8> {
    const TICKS_PER_QUARTER: u16 = 480;
    // At the default 120 bpm a second is two quarters.
    let ticks = |seconds: f64| (seconds * 2.0 * f64::from(TICKS_PER_QUARTER)).round() as u32;
    let mut track = vec![0x00, 0xFF, 0x51, 0x03, 0x07, 0xA1, 0x20]; // tempo 500 000 µs/quarter
    let mut now = 0;
    for note in midi_notes(clip_id) {
        let velocity = (note.velocity * 127.0).round() as u8;
        push_vlq(&mut track, ticks(note.start) - now);
        track.extend_from_slice(&[0x90, note.pitch, velocity]);
        push_vlq(&mut track, ticks(note.end) - ticks(note.start));
        track.extend_from_slice(&[0x80, note.pitch, 0]);
        now = ticks(note.end);
    }
    track.extend_from_slice(&[0x00, 0xFF, 0x2F, 0x00]);
    let mut out = Vec::with_capacity(22 + track.len());
    out.extend_from_slice(b"MThd");
    out.extend_from_slice(&6u32.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes()); // format 0
    out.extend_from_slice(&1u16.to_be_bytes()); // one track
    out.extend_from_slice(&TICKS_PER_QUARTER.to_be_bytes());
    out.extend_from_slice(b"MTrk");
    out.extend_from_slice(&(track.len() as u32).to_be_bytes());
    out.extend_from_slice(&track);
    out
}

/// MIDI variable-length quantity: 7 bits per byte, high bit = more follows.
fn push_vlq(out: &mut Vec<u8>, mut value: u32) {
    let mut bytes = vec![(value & 0x7F) as u8];
    value >>= 7;
    while value > 0 {
        bytes.push(((value & 0x7F) as u8) | 0x80);
        value >>= 7;
    }
    out.extend(bytes.iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_length_follows_duration() {
        let w = wav(2.5);
        assert_eq!(&w[..4], b"RIFF");
        assert_eq!(w.len(), 44 + 20_000);
        assert_eq!(u32::from_le_bytes([w[40], w[41], w[42], w[43]]), 20_000);
    }

    #[test]
    fn mp3_frames_and_midi_header() {
        let m = mp3(1.0);
        assert_eq!(m.len() % 36, 0);
        assert_eq!(&m[36..38], &[0xFF, 0xF3]);
        let mid = midi("abc");
        assert_eq!(&mid[..4], b"MThd");
        assert_eq!(&mid[mid.len() - 3..], &[0xFF, 0x2F, 0x00]);
        let mut v = Vec::new();
        push_vlq(&mut v, 480);
        assert_eq!(v, vec![0x83, 0x60]);
    }

    #[test]
    fn jpeg_is_framed() {
        assert_eq!(&JPEG[..2], &[0xFF, 0xD8]);
        assert_eq!(&JPEG[JPEG.len() - 2..], &[0xFF, 0xD9]);
        assert_eq!(JPEG.len(), 2 + 2 + 2 + 1 + 64 + 13 + 22 + 22 + 10 + 1 + 2);
    }
}
