//! Names, hosts and URLs.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Whether `s` is a DNS-1123 label: 1 to 63 characters, lowercase ASCII
/// letters, digits and '-', starting and ending with a letter or digit.
pub fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            bytes.len() <= 63
                && alnum(first)
                && alnum(last)
                && bytes.iter().all(|&b| alnum(b) || b == b'-')
        }
        _ => false,
    }
}

/// Whether `s` is a DNS-1123 subdomain: labels separated by dots, at most
/// 253 characters in all.
pub(crate) fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Whether `s` looks like a DNS name rather than an IP address: its last
/// label is not all digits.
fn last_label_is_numeric(s: &str) -> bool {
    s.rsplit('.')
        .next()
        .is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
}

/// What a host is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    Dns(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl Host {
    /// The host as written in a URL.
    pub(crate) fn url_form(&self) -> String {
        match self {
            Host::Dns(s) => s.clone(),
            Host::V4(ip) => ip.to_string(),
            Host::V6(ip) => format!("[{ip}]"),
        }
    }

    /// The primary domain derived from this host: the host itself for a DNS
    /// name, `<ip>.nip.io` for an address. An IPv6 address is written with
    /// its eight groups joined by '-' so that the result is a DNS name.
    pub(crate) fn primary_domain(&self) -> String {
        match self {
            Host::Dns(s) => s.clone(),
            Host::V4(ip) => format!("{ip}.nip.io"),
            Host::V6(ip) => {
                let groups: Vec<String> = ip.segments().iter().map(|g| format!("{g:x}")).collect();
                format!("{}.nip.io", groups.join("-"))
            }
        }
    }
}

/// Parses a host name or an IPv4 address (not bracketed IPv6).
pub(crate) fn parse_host(s: &str) -> Option<Host> {
    if let Ok(ip) = s.parse::<Ipv4Addr>() {
        return Some(Host::V4(ip));
    }
    let lower = s.to_ascii_lowercase();
    let lower = lower.strip_suffix('.').unwrap_or(&lower);
    if is_dns1123_subdomain(lower) && !last_label_is_numeric(lower) {
        Some(Host::Dns(lower.to_owned()))
    } else {
        None
    }
}

/// Whether `s` is an IPv4 or IPv6 address (brackets allowed).
pub(crate) fn is_ip_address(s: &str) -> bool {
    let inner = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    inner.parse::<Ipv4Addr>().is_ok() || inner.parse::<Ipv6Addr>().is_ok()
}

/// A parsed `api_server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiServer {
    pub scheme: &'static str,
    pub host: Host,
    pub port: Option<u16>,
}

impl ApiServer {
    /// `scheme://host[:port]`.
    pub(crate) fn normalized(&self) -> String {
        match self.port {
            Some(port) => format!("{}://{}:{}", self.scheme, self.host.url_form(), port),
            None => format!("{}://{}", self.scheme, self.host.url_form()),
        }
    }

    /// The port, or the scheme's default port.
    pub(crate) fn effective_port(&self) -> u16 {
        self.port
            .unwrap_or(if self.scheme == "https" { 443 } else { 80 })
    }
}

/// Why an `api_server` was rejected. `echo` says whether the value may be
/// repeated in the message (never when it may carry a password or token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlProblem {
    pub what: String,
    pub echo: bool,
}

fn problem(what: impl Into<String>) -> UrlProblem {
    UrlProblem {
        what: what.into(),
        echo: true,
    }
}

/// Parses an http or https URL with a host, an optional port, and no path
/// other than "/", no query and no fragment.
pub(crate) fn parse_api_server(s: &str) -> Result<ApiServer, UrlProblem> {
    if s.trim().is_empty() {
        return Err(UrlProblem {
            what: "is empty".to_owned(),
            echo: false,
        });
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(problem("has no http:// or https:// scheme"));
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "https" => "https",
        "http" => "http",
        _ => {
            let shown: String = scheme.chars().take(20).collect();
            return Err(problem(format!(
                "uses the scheme \"{}\"",
                shown.escape_default()
            )));
        }
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(UrlProblem {
            what: "contains a user name or password (not shown)".to_owned(),
            echo: false,
        });
    }
    if tail.contains('?') || tail.contains('#') {
        return Err(UrlProblem {
            what: "has a query or fragment (not shown)".to_owned(),
            echo: false,
        });
    }
    if !tail.is_empty() && tail != "/" {
        return Err(problem("has a path"));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(problem("contains white space"));
    }
    if authority.is_empty() {
        return Err(problem("has no host"));
    }
    let (host_part, port_part) = if let Some(after) = authority.strip_prefix('[') {
        let Some(close) = after.find(']') else {
            return Err(problem("has an unclosed '[' in its host"));
        };
        let inner = &after[..close];
        let Ok(ip) = inner.parse::<Ipv6Addr>() else {
            return Err(problem("has an invalid IPv6 address"));
        };
        let after_close = &after[close + 1..];
        let port = if after_close.is_empty() {
            None
        } else if let Some(p) = after_close.strip_prefix(':') {
            Some(p)
        } else {
            return Err(problem("has text after its IPv6 address"));
        };
        (Host::V6(ip), port)
    } else {
        let (h, p) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if h.is_empty() {
            return Err(problem("has no host"));
        }
        match parse_host(h) {
            Some(host) => (host, p),
            None => return Err(problem("has an invalid host")),
        }
    };
    let port = match port_part {
        None => None,
        Some(p) => match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) && p.bytes().all(|b| b.is_ascii_digit()) => {
                u16::try_from(n).ok()
            }
            Ok(_) => return Err(problem("has a port out of range")),
            Err(_) if p.is_empty() => return Err(problem("has an empty port")),
            Err(_) => return Err(problem("has a port that is not a number")),
        },
    };
    Ok(ApiServer {
        scheme,
        host: host_part,
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(is_dns1123_label("a"));
        assert!(is_dns1123_label("cluster-1"));
        assert!(is_dns1123_label("1abc"));
        assert!(is_dns1123_label(&"a".repeat(63)));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(!is_dns1123_label(""));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label("a-"));
        assert!(!is_dns1123_label("A"));
        assert!(!is_dns1123_label("a_b"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label("é"));
    }

    #[test]
    fn subdomains() {
        assert!(is_dns1123_subdomain("example.com"));
        assert!(is_dns1123_subdomain("10.0.0.5.nip.io"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain(".a"));
        assert!(!is_dns1123_subdomain(&format!("{}.com", "a".repeat(260))));
    }

    #[test]
    fn api_servers() {
        let ok = |s: &str| parse_api_server(s).map(|a| a.normalized());
        assert_eq!(
            ok("https://10.0.0.5:6443"),
            Ok("https://10.0.0.5:6443".into())
        );
        assert_eq!(
            ok("HTTPS://Example.COM:6443/"),
            Ok("https://example.com:6443".into())
        );
        assert_eq!(ok("http://k8s.local"), Ok("http://k8s.local".into()));
        assert_eq!(ok("https://[::1]:6443"), Ok("https://[::1]:6443".into()));
        for bad in [
            "",
            "10.0.0.5:6443",
            "ftp://x",
            "https://",
            "https://:6443",
            "https://u:p@x",
            "https://x:0",
            "https://x:65536",
            "https://x:abc",
            "https://x:",
            "https://x/api",
            "https://x?token=1",
            "https://x/#f",
            "https://ex_ample",
            "https://10.0.0",
            "https://[::1",
            "https://[zz]:1",
            "https://[::1]x",
            "https://a b",
            "https://x:+80",
        ] {
            assert!(parse_api_server(bad).is_err(), "{bad}");
        }
        let hidden = parse_api_server("https://u:secret@x").err();
        assert_eq!(hidden.map(|e| e.echo), Some(false));
    }

    #[test]
    fn ports_and_domains() {
        let a = parse_api_server("https://10.0.0.5").ok();
        assert_eq!(a.as_ref().map(ApiServer::effective_port), Some(443));
        assert_eq!(
            a.map(|a| a.host.primary_domain()),
            Some("10.0.0.5.nip.io".into())
        );
        let b = parse_api_server("http://[2001:db8::1]:31443").ok();
        assert_eq!(b.as_ref().map(ApiServer::effective_port), Some(31443));
        assert_eq!(
            b.map(|a| a.host.primary_domain()),
            Some("2001-db8-0-0-0-0-0-1.nip.io".into())
        );
        assert!(is_ip_address("[::1]"));
        assert!(is_ip_address("1.2.3.4"));
        assert!(!is_ip_address("a.b"));
    }
}
