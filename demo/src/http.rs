//! The HTTP side of the service, on axum: one handler for every request.
//! It routes with [`Api::route`]; what needs no Redis (the page, `/health`,
//! `404`, `405`) is answered at once on the async side, and only then is
//! the body read, bounded in size ([`MAX_BODY_BYTES`], `413`) and in time
//! (the body timeout, `408`), and [`Api::run`] called on tokio's blocking
//! pool, as a blocking service runs inside an async server. A [`Reply`]
//! becomes a response with the demo's headers.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{
    HeaderMap, HeaderValue, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_SECURITY_POLICY,
    CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::api::{Api, Reply, Route, MAX_BODY_BYTES};

#[derive(Clone)]
struct Shared {
    api: Arc<Api>,
    body_timeout: Duration,
}

/// The router: every method and path goes to the one handler.
pub fn router(api: Arc<Api>, body_timeout: Duration) -> Router {
    Router::new()
        .fallback(answer)
        .with_state(Shared { api, body_timeout })
}

async fn answer(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().to_ascii_uppercase();
    let reply = match Api::route(&method, parts.uri.path()) {
        Route::Ready(reply) => reply,
        Route::Redis(endpoint) => {
            match read_body(&parts.headers, body, shared.body_timeout).await {
                Err(reply) => reply,
                Ok(body) => {
                    let api = Arc::clone(&shared.api);
                    let query = parts.uri.query().unwrap_or_default().to_string();
                    tokio::task::spawn_blocking(move || api.run(endpoint, &query, &body))
                        .await
                        .unwrap_or_else(|e| {
                            log::error!("{method} {}: {e}", parts.uri.path());
                            Reply::error(500, "internal error")
                        })
                }
            }
        }
    };
    log::debug!("{method} {} -> {}", parts.uri, reply.status);
    response(reply)
}

/// Reads the whole body within `timeout`: a declared or actual length over
/// [`MAX_BODY_BYTES`] is a `413`, a body not complete in time a `408`.
async fn read_body(headers: &HeaderMap, body: Body, timeout: Duration) -> Result<Bytes, Reply> {
    let too_large = || Reply::error(413, format!("body larger than {MAX_BODY_BYTES} bytes"));
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(timeout, Limited::new(body, MAX_BODY_BYTES).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(Reply::error(400, format!("cannot read the body: {e}"))),
        Err(_) => Err(Reply::error(
            408,
            format!("the body did not arrive within {} ms", timeout.as_millis()),
        )),
    }
}

fn response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let cache = if reply.cacheable {
        "no-cache"
    } else {
        "no-store"
    };
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if reply.content_type.starts_with("text/html") {
        headers.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:",
            ),
        );
    }
    // The body was not read to its end: the connection cannot carry
    // another request.
    if matches!(
        status,
        StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE
    ) {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
