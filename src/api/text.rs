//! Text the server sends, made safe to store and print.
//!
//! Everything the service says — error messages, error bodies, titles,
//! lyrics, URLs — passes through [`Redactor::clean`] before it reaches an
//! error, an output, the journal or the terminal. It
//!
//! * removes the API key and its obvious encodings (`Bearer <key>` is
//!   covered by the key itself; percent-encoded and base64 forms too),
//!   replacing each with `<redacted>`;
//! * removes terminal escape sequences (CSI, OSC and other `ESC` forms) and
//!   every other control character, keeping tab and newline only where the
//!   text may span lines (a single line gets a space instead);
//! * truncates to a limit, saying so and how long the original was.

use base64::Engine;

/// What replaces a secret.
pub(crate) const REDACTED: &str = "<redacted>";

/// Limit for text shown on one line: messages, error bodies, titles.
pub(crate) const LINE_MAX: usize = 300;

/// Limit for any other text field of an answer (lyrics, prompts, URLs).
pub(crate) const FIELD_MAX: usize = 20_000;

/// Keys shorter than this are not searched for: a one-letter test key
/// would otherwise blank every such letter out of every answer.
const MIN_SECRET: usize = 6;

/// How one piece of server text is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// One line of at most [`LINE_MAX`] characters.
    Line,
    /// Lines kept, at most [`FIELD_MAX`] characters.
    Block,
}

/// Cleans server text, knowing which secrets to take out.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    /// Every form of every secret, longest first.
    forms: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor(<redacted>)")
    }
}

impl Redactor {
    /// A redactor for `key`.
    pub(crate) fn new(key: &str) -> Redactor {
        let mut forms = Vec::new();
        if key.chars().count() >= MIN_SECRET {
            let b64 = [
                base64::engine::general_purpose::STANDARD.encode(key),
                base64::engine::general_purpose::STANDARD_NO_PAD.encode(key),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key),
            ];
            forms.push(key.to_owned());
            forms.push(percent_encode(key));
            forms.extend(b64);
        }
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        forms.dedup();
        Redactor { forms }
    }

    /// Whether `text` holds a secret.
    #[cfg(test)]
    pub(crate) fn finds(&self, text: &str) -> bool {
        self.forms.iter().any(|f| text.contains(f.as_str()))
    }

    /// `raw` without secrets, escape sequences or control characters, cut
    /// to the limit of `shape`.
    pub(crate) fn clean(&self, raw: &str, shape: Shape) -> String {
        let limit = match shape {
            Shape::Line => LINE_MAX,
            Shape::Block => FIELD_MAX,
        };
        // Secrets first, on the whole text, so stripping cannot join the
        // pieces of a split key back together, nor truncation leave half.
        let mut text = strip(raw, shape);
        for form in &self.forms {
            if text.contains(form.as_str()) {
                text = text.replace(form.as_str(), REDACTED);
            }
        }
        truncate(text, limit)
    }

    /// [`Redactor::clean`] on one line.
    pub(crate) fn line(&self, raw: &str) -> String {
        self.clean(raw, Shape::Line)
    }

    /// Replaces every secret in a raw body, before it is decoded.
    pub(crate) fn bytes(&self, body: Vec<u8>) -> Vec<u8> {
        let mut body = body;
        for form in &self.forms {
            let needle = form.as_bytes();
            if needle.is_empty() || !contains(&body, needle) {
                continue;
            }
            let mut out = Vec::with_capacity(body.len());
            let mut i = 0;
            while i < body.len() {
                if body[i..].starts_with(needle) {
                    out.extend_from_slice(REDACTED.as_bytes());
                    i += needle.len();
                } else {
                    out.push(body[i]);
                    i += 1;
                }
            }
            body = out;
        }
        body
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Percent-encodes everything but unreserved characters, so an id can never
/// change the path or query it is put in (and a key is known in that form too).
pub(super) fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Drops escape sequences and control characters.
fn strip(raw: &str, shape: Shape) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // C1 CSI and OSC introducers.
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' => skip_osc(&mut chars),
            '\n' | '\t' if shape == Shape::Block => out.push(c),
            '\n' | '\t' | '\r' => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c if c.is_control() || is_bidi_control(c) => {}
            c => out.push(c),
        }
    }
    if shape == Shape::Line {
        out.trim().to_owned()
    } else {
        out
    }
}

/// Characters that reorder text on a terminal (a message could disguise
/// what it says).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

fn skip_escape(chars: &mut Chars<'_>) {
    match chars.peek() {
        Some('[') => {
            chars.next();
            skip_csi(chars);
        }
        Some(']' | 'P' | '_' | '^' | 'X') => {
            chars.next();
            skip_osc(chars);
        }
        // A two-character sequence (`ESC c`, `ESC (B` is three, its last
        // character is plain text afterwards and harmless).
        Some(_) => {
            chars.next();
        }
        None => {}
    }
}

/// Parameters and intermediates up to the final byte `@`–`~`.
fn skip_csi(chars: &mut Chars<'_>) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            break;
        }
    }
}

/// Up to BEL or the string terminator `ESC \`.
fn skip_osc(chars: &mut Chars<'_>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => break,
            '\u{1b}' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                break;
            }
            _ => {}
        }
    }
}

/// `raw` on one clean line of bounded length, for text that has no secret
/// to look for (it already went through a [`Redactor`]), such as a URL an
/// answer held, quoted in an error.
pub(crate) fn one_line(raw: &str) -> String {
    Redactor::default().line(raw)
}

/// A byte count for people: `512 MiB`, `64 KiB`, `12 bytes`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size && n.is_multiple_of(size) {
            return format!("{} {unit}", n / size);
        }
        if n >= size {
            return format!("{:.1} {unit}", n as f64 / size as f64);
        }
    }
    format!("{n} bytes")
}

fn truncate(text: String, limit: usize) -> String {
    let total = text.chars().count();
    if total <= limit {
        return text;
    }
    let kept: String = text.chars().take(limit).collect();
    format!("{kept}… [truncated: first {limit} of {total} characters]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &str = "sk-live-Secret_123";

    #[test]
    fn table_of_hostile_texts() {
        let r = Redactor::new(KEY);
        let b64 = base64::engine::general_purpose::STANDARD.encode(KEY);
        let rows: Vec<(String, &str)> = vec![
            ("plain message".into(), "plain message"),
            (format!("bad key {KEY}"), "bad key <redacted>"),
            (
                format!("Authorization: Bearer {KEY}!"),
                "Authorization: Bearer <redacted>!",
            ),
            (format!("k={}", percent_encode(KEY)), "k=<redacted>"),
            (format!("basic {b64}"), "basic <redacted>"),
            ("\u{1b}[31mred\u{1b}[0m".into(), "red"),
            ("title\u{1b}]0;owned\u{7}!".into(), "title!"),
            ("a\u{1b}]8;;http://x\u{1b}\\link".into(), "alink"),
            ("two\nlines\r\n".into(), "two lines"),
            ("nul\u{0}bell\u{7}del\u{7f}".into(), "nulbelldel"),
            ("\u{202e}txt.exe".into(), "txt.exe"),
            ("c1\u{9b}2Jcsi".into(), "c1csi"),
            // A key split by an escape is joined back, then still redacted.
            (format!("{}\u{1b}[0m{}", &KEY[..4], &KEY[4..]), "<redacted>"),
        ];
        for (raw, want) in rows {
            assert_eq!(r.line(&raw), want, "{raw:?}");
        }
        assert_eq!(r.clean("a\n\tb\u{1b}[2J", Shape::Block), "a\n\tb");
    }

    #[test]
    fn long_text_is_cut_and_says_so() {
        let r = Redactor::new(KEY);
        let long = "x".repeat(5_000_000);
        let line = r.line(&long);
        assert!(line.len() < LINE_MAX + 100, "{}", line.len());
        assert!(
            line.ends_with("… [truncated: first 300 of 5000000 characters]"),
            "{line}"
        );
        let block = r.clean(&long, Shape::Block);
        assert!(block.len() < FIELD_MAX + 100);
    }

    #[test]
    fn short_keys_are_not_searched_and_bytes_are_redacted() {
        assert_eq!(Redactor::new("k").line("keep kk"), "keep kk");
        let r = Redactor::new(KEY);
        let body = format!(r#"{{"message":"echo {KEY} {KEY}"}}"#).into_bytes();
        let clean = String::from_utf8(r.bytes(body)).unwrap();
        assert_eq!(clean, r#"{"message":"echo <redacted> <redacted>"}"#);
    }

    proptest! {
        #[test]
        fn cleaned_text_has_no_controls_no_key_and_is_bounded(
            a in any::<String>(), b in any::<String>(), esc in "\u{1b}\\[[0-9;]{0,6}[A-Za-z]",
        ) {
            let r = Redactor::new(KEY);
            let raw = format!("{a}{esc}{KEY}{b}");
            let line = r.line(&raw);
            prop_assert!(!line.chars().any(|c| c.is_control()));
            prop_assert!(!r.finds(&line));
            prop_assert!(line.chars().count() <= LINE_MAX + 60);
        }
    }
}
