//! The OpenAI error shape both planes answer with: `{"error":{"message","type","param","code"}}`
//! and `Retry-After` where waiting helps. Each plane's error type says what goes in it.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// What an error answer says.
pub struct ErrorBody<'a> {
    pub message: String,
    pub kind: &'static str,
    /// The request field at fault: a name, or a path into the body (`input[2].content[0].file_id`).
    pub param: Option<&'a str>,
    pub code: Option<String>,
    /// When a usage limit resets (unix seconds): sent as `error.resets_at`, which Codex clients
    /// read; only on `usage_limit_reached`.
    pub resets_at: Option<i64>,
}

/// An error answer's `code`, kept in the response's extensions for its audit row.
#[derive(Clone, Debug)]
pub struct ErrorCode(pub String);

/// Writes `{"error":{"message","type","param","code"}}` with `status`, and `Retry-After` when
/// waiting helps. Shared by the data plane and the admin plane.
pub fn openai_error(
    status: StatusCode,
    retry_after: Option<u64>,
    body: ErrorBody<'_>,
) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    if let Some(code) = &body.code {
        response.extensions_mut().insert(ErrorCode(code.clone()));
    }
    if let Some(seconds) = retry_after {
        response.insert_header(("retry-after", seconds.to_string()));
    }
    let mut error = json!({
        "message": body.message,
        "type": body.kind,
        "param": body.param,
        "code": body.code,
    });
    if let Some(at) = body.resets_at {
        error["resets_at"] = json!(at);
    }
    response.json(json!({ "error": error }))
}

/// Too many failed authentications from the client's address: a 429 on either plane.
#[derive(Debug, thiserror::Error)]
#[error(
    "Too many requests without valid credentials from your address: check your API key. \
     For {secs} s, requests without a valid key are refused."
)]
pub struct Throttled {
    secs: u64,
}

impl Throttled {
    pub fn for_(retry_after: Duration) -> Throttled {
        // Rounded up: a client that waits this long finds a failure's worth of budget again.
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        Throttled { secs }
    }
}

impl ResponseError for Throttled {
    fn status_code(&self) -> StatusCode {
        StatusCode::TOO_MANY_REQUESTS
    }

    fn error_response(&self) -> HttpResponse {
        openai_error(
            self.status_code(),
            Some(self.secs.max(1)),
            ErrorBody {
                message: self.to_string(),
                kind: "requests",
                param: None,
                code: Some("rate_limit_exceeded".to_owned()),
                resets_at: None,
            },
        )
    }
}
