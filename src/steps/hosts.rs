//! Which addresses result files may be downloaded from.
//!
//! The URLs come from the server, so they are not trusted: a file is only
//! fetched (and a redirect only followed) when its address is
//!
//! * `https` on one of the service's file hosts ([`SERVICE_DOMAINS`], or a
//!   subdomain of one), on the default port;
//! * the API's own address: the same scheme, host and port as the base URL
//!   (the sandbox serves its files there; for a loopback base, any loopback
//!   name on that port);
//! * or a host given with `--allow-download-host`: `HOST` (https, default
//!   port), `HOST:PORT`, `http://HOST[:PORT]` for plain http, and
//!   `*.DOMAIN` for every subdomain of `DOMAIN`.
//!
//! Redirects are followed at most [`MAX_REDIRECTS`] times, each to an
//! allowed address.

use std::fmt;
use std::str::FromStr;

use reqwest::Url;

/// The service's file hosts (observed: `cdn1.suno.ai`, `cdn2.suno.ai`,
/// `cdn.sunoapi.com`) and the service's own domains.
pub const SERVICE_DOMAINS: &[&str] = &["suno.ai", "sunoapi.com", "musicapi.ai", "aimusicapi.ai"];

/// Most redirects one download follows.
pub const MAX_REDIRECTS: usize = 5;

/// One allowed address, as given to `--allow-download-host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    scheme: String,
    /// Lower case, without brackets for IPv6.
    host: String,
    /// `*.DOMAIN`: every subdomain of `host`, and `host` itself.
    subdomains: bool,
    port: u16,
    /// The API's own loopback address: any loopback name stands for it
    /// (a base of `localhost:PORT` serves files as `127.0.0.1:PORT`).
    any_loopback: bool,
}

fn is_loopback(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

impl HostRule {
    fn matches(&self, url: &Url) -> bool {
        let Some(host) = url_host(url) else {
            return false;
        };
        let host_ok = host == self.host
            || (self.subdomains && host.ends_with(&format!(".{}", self.host)))
            || (self.any_loopback && is_loopback(&host));
        url.scheme() == self.scheme && host_ok && url.port_or_known_default() == Some(self.port)
    }

    /// The origin of a base URL: exactly its scheme, host and port (any
    /// loopback name for a loopback host).
    fn origin(base: &str) -> Option<HostRule> {
        let url = Url::parse(base).ok()?;
        let host = url_host(&url)?;
        Some(HostRule {
            scheme: url.scheme().to_owned(),
            any_loopback: is_loopback(&host),
            host,
            subdomains: false,
            port: url.port_or_known_default()?,
        })
    }
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let star = if self.subdomains { "*." } else { "" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{}://{star}{host}:{}", self.scheme, self.port)
    }
}

impl FromStr for HostRule {
    type Err = String;

    fn from_str(raw: &str) -> Result<HostRule, String> {
        let raw = raw.trim();
        let bad = |why: &str| {
            format!(
                "`{raw}` is not a download host ({why}): give `HOST`, `HOST:PORT`, `http://HOST:PORT` or `*.DOMAIN`"
            )
        };
        let (scheme, rest) = match raw.split_once("://") {
            Some((s, rest)) => (s.to_ascii_lowercase(), rest),
            None => ("https".to_owned(), raw),
        };
        if scheme != "https" && scheme != "http" {
            return Err(bad("only http and https"));
        }
        let (subdomains, rest) = match rest.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        let url = Url::parse(&format!("{scheme}://{rest}")).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.path(), "" | "/") || url.query().is_some() || !url.username().is_empty() {
            return Err(bad("a host, not a URL with a path"));
        }
        let host = url_host(&url).ok_or_else(|| bad("no host"))?;
        let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
        Ok(HostRule {
            scheme,
            host,
            subdomains,
            port,
            any_loopback: false,
        })
    }
}

fn url_host(url: &Url) -> Option<String> {
    let host = url.host_str()?.to_ascii_lowercase();
    Some(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
}

/// The whole policy for one run.
#[derive(Debug, Clone)]
pub(crate) struct HostPolicy {
    rules: Vec<HostRule>,
}

impl HostPolicy {
    /// The service's hosts, the API's own origin and `extra`.
    pub(crate) fn new(api_base: &str, extra: &[HostRule]) -> HostPolicy {
        let mut rules: Vec<HostRule> = SERVICE_DOMAINS
            .iter()
            .map(|d| HostRule {
                scheme: "https".to_owned(),
                host: (*d).to_owned(),
                subdomains: true,
                port: 443,
                any_loopback: false,
            })
            .collect();
        rules.extend(HostRule::origin(api_base));
        rules.extend(extra.iter().cloned());
        HostPolicy { rules }
    }

    /// `Ok` when `url` may be fetched; else why not, and the fix.
    pub(crate) fn check(&self, url: &Url) -> Result<(), String> {
        if self.rules.iter().any(|r| r.matches(url)) {
            return Ok(());
        }
        let at = match (url_host(url), url.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{}://{h}:{p}", url.scheme()),
            _ => url.scheme().to_owned(),
        };
        Err(format!(
            "`{at}` is not an allowed download host (files come over https from the service's hosts or from the API's own address); if it is trusted, pass `--allow-download-host {}`",
            suggestion(url)
        ))
    }

    /// A redirect policy that follows only to allowed addresses, at most
    /// [`MAX_REDIRECTS`] times.
    pub(crate) fn redirects(&self) -> reqwest::redirect::Policy {
        let policy = self.clone();
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                let message = format!("more than {MAX_REDIRECTS} redirects");
                return attempt.error(message);
            }
            match policy.check(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(why) => attempt.error(format!("redirect refused: {why}")),
            }
        })
    }
}

/// What to pass to `--allow-download-host` for `url`.
fn suggestion(url: &Url) -> String {
    let host = url.host_str().unwrap_or("HOST");
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    match url.scheme() {
        "https" => format!("{host}{port}"),
        other => format!("{other}://{host}{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn rules_parse_and_match() {
        let rows: &[(&str, &str, bool)] = &[
            ("files.example", "https://files.example/a.mp3", true),
            ("files.example", "http://files.example/a.mp3", false),
            ("files.example", "https://files.example:8443/a.mp3", false),
            ("FILES.example:8443", "https://files.example:8443/a", true),
            ("http://127.0.0.1:9000", "http://127.0.0.1:9000/f", true),
            ("http://127.0.0.1:9000", "http://127.0.0.1:9001/f", false),
            ("*.cdn.example", "https://a.b.cdn.example/f", true),
            ("*.cdn.example", "https://cdn.example/f", true),
            ("*.cdn.example", "https://evilcdn.example/f", false),
            ("[::1]:8080", "https://[::1]:8080/f", true),
        ];
        for (rule, u, want) in rows {
            let r: HostRule = rule.parse().unwrap();
            assert_eq!(r.matches(&url(u)), *want, "{rule} vs {u}");
        }
        for bad in ["ftp://x", "https://x/path", "", "http://"] {
            assert!(bad.parse::<HostRule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_policy_is_https_service_hosts_and_the_api_origin() {
        let p = HostPolicy::new("http://127.0.0.1:4010", &[]);
        for ok in [
            "https://cdn1.suno.ai/x.mp3",
            "https://cdn.sunoapi.com/storage/x.mid",
            "http://127.0.0.1:4010/files/x.mp3",
        ] {
            assert!(p.check(&url(ok)).is_ok(), "{ok}");
        }
        for refused in [
            "http://cdn1.suno.ai/x.mp3",
            "https://cdn1.suno.ai.evil.example/x.mp3",
            "http://127.0.0.1:4011/x.mp3",
            "https://127.0.0.1:4010/x.mp3",
            "https://169.254.169.254/latest/meta-data",
        ] {
            let err = p.check(&url(refused)).unwrap_err();
            assert!(err.contains("--allow-download-host"), "{refused}: {err}");
        }
        // The API's own loopback port under another loopback name.
        let local = HostPolicy::new("http://localhost:4010", &[]);
        assert!(local.check(&url("http://127.0.0.1:4010/f.mp3")).is_ok());
        assert!(local.check(&url("http://127.0.0.1:4011/f.mp3")).is_err());
        let err = p.check(&url("http://127.0.0.1:4011/x")).unwrap_err();
        assert!(err.contains("`http://127.0.0.1:4011`"), "{err}");
        assert!(
            err.ends_with("--allow-download-host http://127.0.0.1:4011`"),
            "{err}"
        );
    }
}
