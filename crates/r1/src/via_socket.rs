//! `r1 open --via-socket`: the web UI of a daemon reached only through its unix socket
//! (an SSH-forwarded socket, `R1_SOCK`), served to the browser on a local loopback port.
//!
//! The daemon applies its browser perimeter (Host pin, Origin check) only on its own TCP
//! listener; the unix socket trusts its peer. So this relay is the perimeter of its own
//! port: a request whose `Host` is not this port's (DNS rebinding) or whose `Origin` is
//! not this port's own origin (any other web page) is refused with 403 before anything
//! reaches the socket. Everything else is relayed byte for byte, one request per
//! connection (`Connection: close` is forced, so no later request on a kept-alive
//! connection escapes the check), WebSocket upgrades included. The token is never added
//! here: the page gets it from the single-use login code, as with the daemon's own port.
//!
//! Written by hand over `httparse` because a general reverse proxy crate would bring a
//! server and client stack for what is a header check and `copy_bidirectional`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::Semaphore;

/// The most a request head may take.
const MAX_HEAD: usize = 16 * 1024;
/// How long a browser has to send a request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections relayed at once (event streams and sockets are long-lived).
const MAX_CONNECTIONS: usize = 64;

/// A relay from a loopback port to a daemon's unix socket.
pub struct Relay {
    listener: TcpListener,
    sock: PathBuf,
    port: u16,
}

impl Relay {
    /// Binds `127.0.0.1:0` for the daemon behind `sock`.
    pub async fn bind(sock: &Path) -> std::io::Result<Relay> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        Ok(Relay {
            listener,
            sock: sock.to_path_buf(),
            port,
        })
    }

    /// The local base URL the browser opens.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Relays connections until the process is stopped.
    pub async fn run(self) {
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let rules = Arc::new(Rules::new(self.port));
        let sock = Arc::new(self.sock);
        loop {
            let Ok((tcp, _)) = self.listener.accept().await else {
                continue;
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                // Full: close at once rather than queue without bound.
                drop(tcp);
                continue;
            };
            let rules = rules.clone();
            let sock = sock.clone();
            tokio::spawn(async move {
                if let Err(e) = relay(tcp, &sock, &rules).await {
                    tracing::debug!("relay: {e}");
                }
                drop(permit);
            });
        }
    }
}

/// The Host and Origin values this port accepts.
struct Rules {
    hosts: [String; 2],
    origins: [String; 2],
}

impl Rules {
    fn new(port: u16) -> Rules {
        Rules {
            hosts: [format!("127.0.0.1:{port}"), format!("localhost:{port}")],
            origins: [
                format!("http://127.0.0.1:{port}"),
                format!("http://localhost:{port}"),
            ],
        }
    }

    /// Why a request with these headers is refused, if it is.
    fn refuse(&self, head: &Head) -> Option<&'static str> {
        match &head.host {
            Some(h) if self.hosts.iter().any(|a| a.eq_ignore_ascii_case(h)) => {}
            _ => return Some("this port answers only to its own Host"),
        }
        match &head.origin {
            None => None,
            Some(o) if self.origins.iter().any(|a| a.eq_ignore_ascii_case(o)) => None,
            Some(_) => Some("this port answers only to pages of its own origin"),
        }
    }
}

/// What the relay reads of a request head.
#[derive(Debug)]
struct Head {
    host: Option<String>,
    origin: Option<String>,
    /// The head as it goes to the socket: `Connection: close` unless it upgrades.
    rewritten: Vec<u8>,
    /// Bytes after the head (the start of a body), sent on as they are.
    rest: Vec<u8>,
}

/// Parses a complete request head from `buf`; `Ok(None)` when more bytes are needed.
fn parse(buf: &[u8]) -> Result<Option<Head>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("malformed request"),
    };
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Err("malformed request");
    };
    let value = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::to_string)
    };
    // Only a WebSocket handshake keeps its connection open past one exchange.
    let upgrade = match value("upgrade") {
        None => false,
        Some(u) if u.eq_ignore_ascii_case("websocket") && method == "GET" => true,
        Some(_) => return Err("only WebSocket upgrades are relayed"),
    };
    let mut out = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    for h in req.headers.iter() {
        let drop_it = !upgrade
            && (h.name.eq_ignore_ascii_case("connection")
                || h.name.eq_ignore_ascii_case("keep-alive"));
        if !drop_it {
            out.extend_from_slice(h.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
        }
    }
    if !upgrade {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(Head {
        host: value("host"),
        origin: value("origin"),
        rewritten: out,
        rest: buf[len..].to_vec(),
    }))
}

async fn relay(mut tcp: TcpStream, sock: &Path, rules: &Rules) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(2048);
    let head = tokio::time::timeout(HEAD_TIMEOUT, async {
        let mut chunk = [0u8; 2048];
        loop {
            let n = tcp.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk[..n]);
            match parse(&buf) {
                Ok(Some(h)) => return Ok(Some(Ok(h))),
                Ok(None) if buf.len() < MAX_HEAD => {}
                Ok(None) => return Ok(Some(Err("request head too large"))),
                Err(e) => return Ok(Some(Err(e))),
            }
        }
    })
    .await;
    let head = match head {
        Err(_) => return Ok(()), // no head in time: drop the connection
        Ok(Err(e)) => return Err(e),
        Ok(Ok(None)) => return Ok(()),
        Ok(Ok(Some(Err(why)))) => return refuse(tcp, 400, why).await,
        Ok(Ok(Some(Ok(h)))) => h,
    };
    if let Some(why) = rules.refuse(&head) {
        return refuse(tcp, 403, why).await;
    }
    let mut up = match UnixStream::connect(sock).await {
        Ok(s) => s,
        Err(e) => {
            let why = format!("cannot reach the daemon's socket {}: {e}", sock.display());
            return refuse(tcp, 502, &why).await;
        }
    };
    up.write_all(&head.rewritten).await?;
    up.write_all(&head.rest).await?;
    tokio::io::copy_bidirectional(&mut tcp, &mut up).await?;
    Ok(())
}

async fn refuse(mut tcp: TcpStream, status: u16, why: &str) -> std::io::Result<()> {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        _ => "Bad Gateway",
    };
    let body = format!("{why}\n");
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(resp.as_bytes()).await?;
    tcp.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> Head {
        parse(s.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn forces_one_request_per_connection_but_keeps_upgrades() {
        let h = head("GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:9\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\n\r\nxy");
        let text = String::from_utf8(h.rewritten).unwrap();
        assert!(text.ends_with("Connection: close\r\n\r\n"), "{text}");
        assert!(!text.to_ascii_lowercase().contains("keep-alive"), "{text}");
        assert_eq!(h.rest, b"xy");
        let h = head("GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:9\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
        let text = String::from_utf8(h.rewritten).unwrap();
        assert!(text.contains("Connection: Upgrade\r\n"), "{text}");
        assert!(!text.contains("close"), "{text}");
    }

    #[test]
    fn refuses_other_hosts_and_origins() {
        let r = Rules::new(9);
        assert_eq!(
            r.refuse(&head("GET / HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n")),
            None
        );
        assert_eq!(
            r.refuse(&head(
                "POST /v1/sessions HTTP/1.1\r\nHost: localhost:9\r\nOrigin: http://localhost:9\r\n\r\n"
            )),
            None
        );
        assert!(r
            .refuse(&head("GET / HTTP/1.1\r\nHost: rebind.test:9\r\n\r\n"))
            .is_some());
        assert!(r.refuse(&head("GET / HTTP/1.1\r\n\r\n")).is_some());
        assert!(r
            .refuse(&head(
                "POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1:9\r\nOrigin: http://evil.test\r\n\r\n"
            ))
            .is_some());
        assert!(r
            .refuse(&head(
                "POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1:9\r\nOrigin: null\r\n\r\n"
            ))
            .is_some());
        assert!(parse(b"NOT HTTP\r\n\r\n").is_err());
        assert!(parse(b"POST / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n").is_err());
        assert!(parse(b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n").is_err());
        assert!(parse(b"GET / HTTP/1.1\r\nHost: x").unwrap().is_none());
    }
}
