//! The web UI: the files of `web/` embedded in the binary (read from disk in debug
//! builds, so UI work needs no rebuild), served without a token — they hold no data and
//! no secrets; everything they show comes through the authenticated API.

use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use r1_proto::ApiError;
use rust_embed::RustEmbed;

use crate::error::HttpError;

#[derive(RustEmbed)]
#[folder = "../../web/"]
#[exclude = "tests/*"]
#[exclude = "*.md"]
#[exclude = "*.sh"]
struct Web;

/// The content type of an asset, by its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// Serves `/` (the UI's `index.html`) and the other files of `web/`.
pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    match Web::get(path) {
        Some(file) => {
            let mut resp = (StatusCode::OK, file.data.into_owned()).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(path)),
            );
            resp
        }
        None => HttpError(ApiError::not_found("no such page")).into_response(),
    }
}
