//! HTTP/1.1 to the daemon over the unix socket or loopback TCP, one connection per
//! request (a CLI invocation makes one or two; followers hold one open).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use r1_proto::{ApiError, ErrorEnvelope, Registration};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::{TcpStream, UnixStream};

use crate::discovery::{euid, read_token, tcp_listener_owned_by};
use crate::ClientError;

/// How the client reaches the daemon.
#[derive(Debug, Clone)]
pub enum Transport {
    /// The unix socket, only for the daemon's own uid; the token is sent here too,
    /// because the daemon asks for it on both listeners.
    Unix(PathBuf),
    /// Loopback TCP with the bearer token.
    Tcp(SocketAddr),
}

/// A connected client of one daemon.
#[derive(Debug)]
pub struct Client {
    home: PathBuf,
    transport: Transport,
    registration: Registration,
    token: Mutex<Option<String>>,
    timeout: Duration,
    /// How long a request keeps trying to reach a daemon that is not there (zero: it
    /// fails at once). A long-lived client sets it to ride out a restart.
    reconnect: Duration,
}

/// A streaming response body (SSE).
pub type EventStream = Incoming;

impl Client {
    /// A client of the daemon registered as `registration`.
    pub fn new(home: &Path, registration: Registration, transport: Transport) -> Client {
        Client {
            home: home.to_path_buf(),
            transport,
            registration,
            token: Mutex::new(None),
            timeout: Duration::from_secs(30),
            reconnect: Duration::ZERO,
        }
    }

    /// The same client, whose requests keep trying to connect for up to `window`
    /// when no daemon answers: `r1 ctl restart` leaves a gap of a second or two while
    /// the new daemon starts at the same socket path, and a long-lived client (the
    /// stdio MCP server) carries on through it instead of failing a tool call.
    pub fn with_reconnect(mut self, window: Duration) -> Client {
        self.reconnect = window;
        self
    }

    /// The registration this client connected to.
    pub fn registration(&self) -> &Registration {
        &self.registration
    }

    /// The transport in use.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The state directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    fn token(&self, reload: bool) -> Result<String, ClientError> {
        let mut cached = self
            .token
            .lock()
            .map_err(|_| ClientError::Protocol("token lock poisoned".into()))?;
        if reload || cached.is_none() {
            *cached = Some(read_token(&self.home)?);
        }
        Ok(cached.clone().unwrap_or_default())
    }

    async fn open(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, ClientError> {
        macro_rules! handshake {
            ($stream:expr) => {{
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new($stream))
                    .await
                    .map_err(|e| ClientError::Unreachable(format!("HTTP handshake failed: {e}")))?;
                tokio::spawn(conn);
                sender
            }};
        }
        Ok(match &self.transport {
            Transport::Unix(path) => {
                let s = connect_unix(path).await.map_err(|e| {
                    ClientError::Unreachable(format!("cannot connect to {}: {e}", path.display()))
                })?;
                // The token goes only to a listener running as this user, as on TCP.
                match s.peer_cred() {
                    Ok(cred) if cred.uid() == euid() => {}
                    Ok(cred) => {
                        return Err(ClientError::Untrusted(format!(
                        "the socket {} is served by uid {}, not you; not sending the token to it",
                        path.display(),
                        cred.uid()
                    )))
                    }
                    Err(e) => {
                        return Err(ClientError::Unreachable(format!(
                            "cannot check who serves {}: {e}",
                            path.display()
                        )))
                    }
                }
                handshake!(s)
            }
            Transport::Tcp(addr) => {
                match tcp_listener_owned_by(addr.port(), euid()) {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err(ClientError::Untrusted(format!(
                            "the listener on {addr} does not belong to you; not sending the token to it"
                        )))
                    }
                    Err(e) => return Err(ClientError::Unreachable(e)),
                }
                let s = TcpStream::connect(addr).await.map_err(|e| {
                    ClientError::Unreachable(format!("cannot connect to {addr}: {e}"))
                })?;
                let _ = s.set_nodelay(true);
                handshake!(s)
            }
        })
    }

    /// [`Client::open`], tried again every 100 ms for up to the reconnect window while
    /// the daemon cannot be reached.
    async fn open_patiently(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, ClientError> {
        let deadline = tokio::time::Instant::now() + self.reconnect;
        loop {
            match self.open().await {
                Err(ClientError::Unreachable(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    fn build(
        &self,
        method: &Method,
        path: &str,
        body: &Option<Vec<u8>>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let host = match &self.transport {
            Transport::Unix(_) => "localhost".to_string(),
            Transport::Tcp(a) => a.to_string(),
        };
        let mut b = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, host);
        if body.is_some() {
            b = b.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Full::new(Bytes::from(body.clone().unwrap_or_default())))
            .map_err(|e| ClientError::Protocol(format!("cannot build request: {e}")))
    }

    /// Sends a request and returns the raw response; a 401 re-reads the token (it may
    /// have been rotated) and retries once.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        // The probe on the socket carries no credential: the daemon serves the
        // handshake there without one, so an incompatible or starting daemon is told
        // apart before the token file is needed.
        let probe = matches!(self.transport, Transport::Unix(_)) && path == "/v1/handshake";
        let mut reload = false;
        loop {
            let token = if probe {
                None
            } else {
                Some(self.token(reload)?)
            };
            let req = self.build(&method, path, &body, token.as_deref(), headers)?;
            let mut sender = self.open_patiently().await?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| ClientError::Unreachable(format!("request failed: {e}")))?;
            if resp.status() == StatusCode::UNAUTHORIZED && !reload && !probe {
                reload = true;
                continue;
            }
            return Ok(resp);
        }
    }

    /// Sends a JSON request and decodes the JSON answer, or the error envelope.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        self.call_with_headers(method, path, body, &[]).await
    }

    /// [`Client::call`] with extra request headers.
    pub async fn call_with_headers<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        headers: &[(&str, &str)],
    ) -> Result<T, ClientError> {
        let body = match body {
            Some(b) => Some(
                serde_json::to_vec(b)
                    .map_err(|e| ClientError::Protocol(format!("cannot encode request: {e}")))?,
            ),
            None => None,
        };
        let fut = async {
            let resp = self.send_raw(method, path, body, headers).await?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Unreachable(format!("reading the answer failed: {e}")))?
                .to_bytes();
            decode(status, &bytes)
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| {
            ClientError::Unreachable(format!("no answer within {}s", self.timeout.as_secs()))
        })?
    }

    /// Opens a streaming GET (an SSE route) and returns the body once the status is OK.
    pub async fn stream(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<EventStream, ClientError> {
        let resp = self.send_raw(Method::GET, path, None, headers).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.into_body());
        }
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Err(decode::<serde_json::Value>(status, &bytes)
            .err()
            .unwrap_or_else(|| ClientError::Protocol(format!("stream answered {status}"))))
    }
}

/// Decodes a success body as `T`, or an error body as the envelope.
fn decode<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> Result<T, ClientError> {
    if status.is_success() {
        return serde_json::from_slice(bytes).map_err(|e| {
            ClientError::Protocol(format!("cannot decode the answer ({status}): {e}"))
        });
    }
    match serde_json::from_slice::<ErrorEnvelope>(bytes) {
        Ok(env) => {
            let mut e = ApiError::from(env);
            e.status = Some(status.as_u16());
            Err(ClientError::Api(e))
        }
        Err(_) => Err(ClientError::Protocol(format!(
            "status {status} without an error envelope"
        ))),
    }
}

/// How long a connect to the unix socket keeps trying while the daemon's listen queue
/// is full (a burst of connections on a loaded machine), before it reports the error.
const FULL_BACKLOG_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Connects to the daemon's unix socket. A full listen queue makes a unix `connect`
/// fail at once with `EAGAIN` (unlike TCP, which waits); that is a burst, not a missing
/// daemon, so it is tried again for up to [`FULL_BACKLOG_PATIENCE`].
async fn connect_unix(path: &Path) -> std::io::Result<UnixStream> {
    let deadline = std::time::Instant::now() + FULL_BACKLOG_PATIENCE;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match UnixStream::connect(path).await {
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}
