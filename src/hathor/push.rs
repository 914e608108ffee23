//! Handing verified entrypoints to a running Hathor node: a minimal HTTP/1.1 client for its
//! `POST /v1a/p2p/peers` API (`--status PORT` of `hathor-cli run_node`).
//!
//! The body is a JSON array of entrypoint strings, each parsed by the node with
//! `PeerEndpoint.parse` (`tcp://ip:port` or `tcp://ip:port/?id=<64 hex>`); the node dials the
//! ones it does not know yet and answers `{"success": true, "peers": [...]}`, or
//! `{"success": false, "message": ...}` with status 200 for a refused body. Plain HTTP only
//! (the API listens on the node's host); every response is read within a time limit and at
//! most [`MAX_RESPONSE`] bytes.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The API path that takes new entrypoints.
pub const PEERS_PATH: &str = "/v1a/p2p/peers";

/// Largest HTTP response read, bytes.
pub const MAX_RESPONSE: u64 = 64 * 1024;

/// Longest response body kept in results and errors, characters.
const MAX_BODY_SHOWN: usize = 512;

/// A parsed node API address (plain HTTP only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushUrl {
    /// Host (name or IP; IPv6 without brackets).
    pub host: String,
    /// Port (80 by default).
    pub port: u16,
    /// Request path, ending in [`PEERS_PATH`].
    pub path: String,
}

impl fmt::Display for PushUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "http://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// Why a push failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushError {
    /// The URL is not `http://HOST[:PORT][/PATH]`.
    Url(String),
    /// No connection to any address of the host.
    Connect(String),
    /// Sending the request or reading the response failed.
    Io(String),
    /// The answer is not an HTTP/1.x response (its first line, truncated).
    NotHttp(String),
    /// A status outside 2xx, with the body (truncated).
    Status(u16, String),
    /// Status 2xx with `{"success": false, ...}` (the body, truncated).
    Refused(String),
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(e) | Self::Connect(e) | Self::Io(e) => f.write_str(e),
            Self::NotHttp(line) => write!(f, "not an HTTP response: {line:?}"),
            Self::Status(code, body) => write!(f, "HTTP {code}: {body}"),
            Self::Refused(body) => write!(f, "the node refused: {body}"),
        }
    }
}

impl std::error::Error for PushError {}

impl PushUrl {
    /// Parses `http://HOST[:PORT][/PREFIX]`; [`PEERS_PATH`] is appended unless present.
    pub fn parse(text: &str) -> Result<Self, PushError> {
        let bad = |why: &str| PushError::Url(format!("{text}: {why}"));
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("https://") {
            return Err(bad(
                "https is not supported; the push speaks plain HTTP/1.1 to a node's local API \
                 (e.g. http://127.0.0.1:8080); use a local http:// address or a tunnel",
            ));
        }
        let Some(rest) = lower.starts_with("http://").then(|| &text[7..]) else {
            return Err(bad("expected http://HOST:PORT (the node's API)"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') || path.contains(['?', '#', ' ']) {
            return Err(bad("expected http://HOST:PORT[/PATH]"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad("bad address")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad(&format!("bad port {p:?}")))?,
            None => 80,
        };
        if host.is_empty() || host.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("bad host"));
        }
        let base = path.trim_end_matches('/');
        let path = if base.ends_with(PEERS_PATH) {
            base.to_string()
        } else {
            format!("{base}{PEERS_PATH}")
        };
        Ok(Self {
            host: host.to_string(),
            port,
            path,
        })
    }
}

/// POSTs `entrypoints` as a JSON array to `url`, each network step within `timeout`; returns
/// the response body (at most 512 characters), or why it failed.
pub fn push(url: &PushUrl, entrypoints: &[String], timeout: Duration) -> Result<String, PushError> {
    let body = serde_json::Value::from(entrypoints.to_vec()).to_string();
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| PushError::Connect(format!("cannot resolve {}: {e}", url.host)))?
        .take(8)
        .collect();
    let mut last = format!("{} resolves to no address", url.host);
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("connect {addr}: {e}"),
        }
    }
    let mut stream = stream.ok_or(PushError::Connect(last))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| PushError::Io(e.to_string()))?;
    let host_header = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: btdht/{}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        url.path,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| PushError::Io(format!("sending the request: {e}")))?;
    let mut response = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut limited = (&mut stream).take(MAX_RESPONSE);
    let mut buf = [0u8; 4096];
    loop {
        if Instant::now() >= deadline {
            break;
        }
        match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&buf[..n]);
                if response_complete(&response) {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if response.is_empty() => {
                return Err(PushError::Io(format!("reading the response: {e}")));
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let code = match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code.parse::<u16>().ok(),
        _ => None,
    };
    let body: String = body.trim().chars().take(MAX_BODY_SHOWN).collect();
    match code {
        Some(c) if (200..300).contains(&c) => {
            // Hathor answers {"success": false, "message": ...} with status 200.
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
                && v.get("success") == Some(&serde_json::Value::Bool(false))
            {
                return Err(PushError::Refused(body));
            }
            Ok(body)
        }
        Some(c) => Err(PushError::Status(c, body)),
        None => Err(PushError::NotHttp(status_line.chars().take(80).collect())),
    }
}

/// Whether a response with a Content-Length has been read entirely.
fn response_complete(response: &[u8]) -> bool {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|len| response.len() >= end + 4 + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_urls() {
        let u = PushUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8080, PEERS_PATH)
        );
        let u = PushUrl::parse("HTTP://localhost/api/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("localhost", 80, "/api/v1a/p2p/peers")
        );
        let u = PushUrl::parse("http://[::1]:8080/v1a/p2p/peers").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 8080, PEERS_PATH)
        );
        assert_eq!(u.to_string(), "http://[::1]:8080/v1a/p2p/peers");
        assert!(
            PushUrl::parse("https://node.example")
                .unwrap_err()
                .to_string()
                .contains("https")
        );
        for bad in [
            "ftp://x",
            "http://",
            "http://a:0",
            "http://a:x",
            "http://u@a:1",
            "http://a:1/p?q",
            "http://[::1",
        ] {
            assert!(PushUrl::parse(bad).is_err(), "{bad}");
        }
    }

    /// A one-shot server on 127.0.0.1 that reads the request head and writes `reply`.
    fn server(reply: Vec<u8>) -> PushUrl {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut conn, _)) = listener.accept() {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(&reply);
            }
        });
        PushUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap()
    }

    #[test]
    fn hostile_push_responses_are_bounded_failures() {
        let t = Duration::from_secs(5);
        let list = ["tcp://127.0.0.1:1/?id=00".to_string()];
        let e = push(&server(b"garbage\r\n\r\n".to_vec()), &list, t).unwrap_err();
        assert!(matches!(e, PushError::NotHttp(_)), "{e}");
        let e = push(&server(b"HTTP/1.1 500 Oops\r\n\r\nboom".to_vec()), &list, t).unwrap_err();
        assert_eq!(e, PushError::Status(500, "boom".into()));
        let mut huge = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        huge.extend(std::iter::repeat_n(b'x', 1 << 20));
        let body = push(&server(huge), &list, t).unwrap();
        assert_eq!(body.len(), 512);
        let e = push(&server(vec![0xff, 0xfe, 0, 1]), &list, t).unwrap_err();
        assert!(matches!(e, PushError::NotHttp(_)), "{e}");
        assert!(push(&server(Vec::new()), &list, t).is_err());
        let refused = b"HTTP/1.1 200 OK\r\nContent-Length: 43\r\n\r\n{\"success\":false,\"message\":\"Malformed ep.\"}";
        let e = push(&server(refused.to_vec()), &list, t).unwrap_err();
        assert!(
            matches!(e, PushError::Refused(ref b) if b.contains("Malformed")),
            "{e}"
        );
    }

    #[test]
    fn complete_responses() {
        assert!(!response_complete(b"HTTP/1.1 200 OK\r\n"));
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc"
        ));
        assert!(response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
        ));
    }
}
