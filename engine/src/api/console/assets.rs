//! The console's stylesheet and its one script, compiled into the binary.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// `GET /assets/console.css`.
pub(super) async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

/// `GET /assets/console.js`.
pub(super) async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}
