//! Errors at the edge: the one place an internal error becomes a wire envelope.

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use r1_proto::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;

/// An [`ApiError`] returned by a handler. It becomes a response carrying the error as
/// an extension; [`render_envelopes`], which knows the request path, writes the body.
#[derive(Debug)]
pub struct HttpError(pub ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        HttpError(e)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = status.into_response();
        resp.extensions_mut().insert(self.0);
        resp
    }
}

/// The error envelope response for `err` on `path`; 401s carry the bearer challenge.
pub fn envelope_response(err: &ApiError, path: &str) -> Response {
    let status =
        StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(&err.envelope(path)).unwrap_or_default();
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"r1\""),
        );
    }
    resp
}

/// Middleware: turns every [`HttpError`] response into the envelope, with the request
/// path (never its query string) as `links.self`.
pub async fn render_envelopes(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    match resp.extensions().get::<ApiError>() {
        Some(err) => {
            let mut out = envelope_response(err, &path);
            for (k, v) in resp.headers() {
                if !out.headers().contains_key(k) {
                    out.headers_mut().insert(k.clone(), v.clone());
                }
            }
            out
        }
        None => resp,
    }
}

/// A JSON request body whose every failure is an envelope: malformed JSON or a wrong
/// shape → 400 `validation`, too large → 413. An empty body reads as `{}`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::validation(
                    "request body is larger than the limit ([limits] max_request_bytes)",
                )
                .with_status(413)
            } else {
                ApiError::validation("could not read the request body")
            }
        })?;
        let slice: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(slice)
            .map(JsonBody)
            .map_err(|e| HttpError(ApiError::validation(format!("invalid JSON body: {e}"))))
    }
}

/// A `not_found` envelope for paths no route serves.
pub async fn fallback() -> HttpError {
    HttpError(ApiError::new(ErrorCode::NotFound, "no such route"))
}
