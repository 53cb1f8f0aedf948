//! Which URLs the page may put in a `src` or `href`: files inside the run
//! folder, percent-encoded, and remote `http(s)` URLs; nothing else.

/// A relative path inside the run folder as a URL path, each part
/// percent-encoded; `None` for absolute paths, `..`, or anything odd.
pub(crate) fn local_path(path: &str) -> Option<String> {
    if path.is_empty() || path.starts_with('/') || path.contains('\\') {
        return None;
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.chars().any(char::is_control) {
            return None;
        }
        parts.push(encode_segment(part));
    }
    Some(parts.join("/"))
}

/// One path segment with everything but unreserved characters percent-encoded.
pub(crate) fn encode_segment(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for b in part.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A remote URL the page may link or play: `http` or `https` only, with no
/// spaces or control characters (never `javascript:`, `data:` or `file:`).
pub(crate) fn remote_url(url: &str) -> Option<String> {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    let allowed = lower.starts_with("http://") || lower.starts_with("https://");
    let clean = !url.chars().any(|c| c.is_whitespace() || c.is_control());
    (allowed && clean && url.len() > "https://".len()).then(|| url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_are_linked() {
        assert_eq!(
            remote_url(" https://cdn.example/a.mp3 ").as_deref(),
            Some("https://cdn.example/a.mp3")
        );
        for hostile in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>",
            "file:///etc/passwd",
            "https://x/a b",
            "http://",
            "",
        ] {
            assert_eq!(remote_url(hostile), None, "{hostile}");
        }
    }

    #[test]
    fn local_paths_stay_in_the_run_folder_and_are_encoded() {
        assert_eq!(
            local_path("song/a1/My Song #1.mp3").as_deref(),
            Some("song/a1/My%20Song%20%231.mp3")
        );
        for outside in ["/etc/passwd", "../x.mp3", "a/../../x", "a//b", "a\\b", ""] {
            assert_eq!(local_path(outside), None, "{outside}");
        }
    }
}
