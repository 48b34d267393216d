//! The one place where failures become HTTP answers: `{"error":{"message","type","param","code"}}`
//! with the status OpenAI would use, and `Retry-After` where waiting helps. No upstream body, no
//! secret and no internal detail ever reaches a client message; causes are logged instead.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::edge::error::{openai_error, ErrorBody};
use crate::intake::IntakeError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")]
    MissingApiKey,
    #[error(
        "Incorrect API key provided. Check the key, or ask your codex-relay operator for one."
    )]
    InvalidApiKey,
    #[error("This API key has expired. Ask your codex-relay operator for a new one.")]
    ExpiredApiKey,
    #[error("The API key may not use the model `{0}`.")]
    ModelNotAllowed(String),
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{message}")]
    QuotaExceeded {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<&'static str>,
        code: Option<&'static str>,
    },
    /// A body that could not be read within its limits (`intake`).
    #[error(transparent)]
    Body(#[from] IntakeError),
    /// An input part names an uploaded file (`file_id`); `param` is where in the body.
    #[error("'{param}' names an uploaded file, but the Codex backend behind codex-relay has no Files API and cannot resolve file ids. Send an image inline as a data URL in 'image_url' (input_image), or a file's content in 'file_data' (input_file).")]
    FileReference { param: String },
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    /// `GET`, `DELETE` or `cancel` of a stored response (`id` bounded already).
    #[error("Response with id '{id}' not found: codex-relay does not store responses (the Codex backend behind it keeps none), so there is nothing to retrieve, list, cancel or delete. Keep what you need from the answer you received.")]
    ResponseNotStored { id: String },
    #[error("Unknown request URL: {method} {path}.")]
    RouteNotFound { method: String, path: String },
    #[error("Method not allowed: {method} {path}.")]
    MethodNotAllowed { method: String, path: String },
    /// A WebSocket the relay does not serve: the text says why (off, or an unknown version).
    #[error("{0}")]
    UpgradeRequired(&'static str),
    #[error("This API key has {limit} WebSocket connections open, its maximum. Close one, or use HTTP streaming.")]
    TooManyConnections { limit: usize },
    #[error("No upstream account is configured. Ask the operator to import one (codex-relay account import).")]
    NoAccounts,
    #[error("No upstream account is available right now. Try again shortly.")]
    NoUsableAccount,
    #[error("Every upstream account is busy with its maximum of concurrent requests. Try again shortly.")]
    PoolBusy,
    #[error("The relay is overloaded. Try again shortly.")]
    Overloaded,
    /// `audit.on_failure = "refuse"` while audit rows cannot be written.
    #[error("The relay cannot record this request in its audit trail right now, and its operator has chosen not to serve unaudited requests. Try again shortly.")]
    AuditUnavailable,
    #[error("The upstream rejected the request: {message}")]
    UpstreamRejected {
        status: StatusCode,
        message: String,
        code: Option<String>,
    },
    #[error("{}", usage_limit_message(*resets_at))]
    UsageLimitReached {
        retry_after_secs: Option<u64>,
        /// Unix seconds of the earliest reset, when known (also sent as `error.resets_at`, which
        /// Codex clients read).
        resets_at: Option<i64>,
    },
    #[error("The upstream is limiting the rate of requests. Try again later.")]
    UpstreamRateLimited { retry_after_secs: Option<u64> },
    #[error("The upstream failed to answer: {0}")]
    UpstreamFailed(&'static str),
    #[error("The upstream did not answer in time.")]
    UpstreamTimeout,
    #[error("The upstream failed the response: {message}")]
    ResponseFailed {
        status: StatusCode,
        message: String,
        code: Option<String>,
    },
    #[error("Internal error in the relay. The request id identifies it in the relay's logs.")]
    Internal,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> ApiError {
        ApiError::InvalidRequest {
            message: message.into(),
            param,
            code: None,
        }
    }

    /// A WebSocket turn that continues a response only another upstream connection knows: the
    /// backend's own answer for a response it does not know, which Codex clients answer by
    /// sending the whole conversation.
    pub fn previous_response_not_found() -> ApiError {
        ApiError::InvalidRequest {
            message: "Previous response not found: it was made on an upstream connection this turn can no longer use (its account is unavailable, or the connection was idle too long). Send the whole conversation in 'input' instead.".to_owned(),
            param: Some("previous_response_id"),
            code: Some("previous_response_not_found"),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ApiError::MissingApiKey | ApiError::InvalidApiKey | ApiError::ExpiredApiKey => {
                "invalid_request_error"
            }
            ApiError::ModelNotAllowed(_) => "invalid_request_error",
            ApiError::RateLimited { .. } | ApiError::TooManyConnections { .. } => "requests",
            ApiError::QuotaExceeded { .. } => "insufficient_quota",
            ApiError::Body(error) => error.kind(),
            ApiError::InvalidRequest { .. }
            | ApiError::FileReference { .. }
            | ApiError::ResponseNotStored { .. }
            | ApiError::ModelNotFound(_)
            | ApiError::RouteNotFound { .. }
            | ApiError::MethodNotAllowed { .. }
            | ApiError::UpgradeRequired(_)
            | ApiError::UpstreamRejected { .. } => "invalid_request_error",
            ApiError::UsageLimitReached { .. } => "usage_limit_reached",
            ApiError::UpstreamRateLimited { .. } => "rate_limit_error",
            ApiError::NoAccounts
            | ApiError::NoUsableAccount
            | ApiError::PoolBusy
            | ApiError::Overloaded
            | ApiError::AuditUnavailable => "service_unavailable",
            ApiError::UpstreamFailed(_)
            | ApiError::UpstreamTimeout
            | ApiError::ResponseFailed { .. }
            | ApiError::Internal => "server_error",
        }
    }

    /// The `code` the error answers with (the access line and the audit row name it).
    pub fn code(&self) -> Option<String> {
        let code = match self {
            ApiError::MissingApiKey => return None,
            ApiError::InvalidApiKey | ApiError::ExpiredApiKey => "invalid_api_key",
            ApiError::ModelNotAllowed(_) => "model_not_found",
            ApiError::RateLimited { .. } => "rate_limit_exceeded",
            ApiError::QuotaExceeded { .. } => "quota_exceeded",
            ApiError::InvalidRequest { code, .. } => return code.map(str::to_owned),
            ApiError::Body(error) => error.code(),
            ApiError::FileReference { .. } => "unsupported_file_reference",
            ApiError::ModelNotFound(_) => "model_not_found",
            ApiError::ResponseNotStored { .. } => "response_not_found",
            ApiError::RouteNotFound { .. } => "unknown_url",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::UpgradeRequired(_) => "websocket_not_supported",
            ApiError::TooManyConnections { .. } => "websocket_connection_limit",
            ApiError::NoAccounts => "no_accounts_configured",
            ApiError::NoUsableAccount => "no_usable_account",
            ApiError::PoolBusy => "pool_busy",
            ApiError::Overloaded => "overloaded",
            ApiError::AuditUnavailable => "audit_unavailable",
            ApiError::UpstreamRejected { code, .. } | ApiError::ResponseFailed { code, .. } => {
                return code.clone()
            }
            ApiError::UsageLimitReached { .. } => "usage_limit_reached",
            ApiError::UpstreamRateLimited { .. } => "rate_limit_exceeded",
            ApiError::UpstreamFailed(_) => "upstream_error",
            ApiError::UpstreamTimeout => "upstream_timeout",
            ApiError::Internal => "internal_error",
        };
        Some(code.to_owned())
    }

    fn param(&self) -> Option<&str> {
        match self {
            ApiError::InvalidRequest { param, .. } => *param,
            ApiError::FileReference { param } => Some(param),
            ApiError::ModelNotFound(_) | ApiError::ModelNotAllowed(_) => Some("model"),
            _ => None,
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::UsageLimitReached {
                retry_after_secs, ..
            }
            | ApiError::UpstreamRateLimited { retry_after_secs } => *retry_after_secs,
            ApiError::RateLimited {
                retry_after_secs, ..
            }
            | ApiError::QuotaExceeded {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::NoUsableAccount
            | ApiError::PoolBusy
            | ApiError::Overloaded
            | ApiError::AuditUnavailable
            | ApiError::TooManyConnections { .. } => Some(1),
            ApiError::Body(IntakeError::Overloaded) => Some(1),
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MissingApiKey | ApiError::InvalidApiKey | ApiError::ExpiredApiKey => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::ModelNotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. }
            | ApiError::QuotaExceeded { .. }
            | ApiError::TooManyConnections { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::InvalidRequest { .. } | ApiError::FileReference { .. } => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Body(error) => error.status(),
            // What OpenAI answers for a response id it does not know.
            ApiError::ModelNotFound(_)
            | ApiError::RouteNotFound { .. }
            | ApiError::ResponseNotStored { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UpgradeRequired(_) => StatusCode::UPGRADE_REQUIRED,
            ApiError::NoAccounts
            | ApiError::NoUsableAccount
            | ApiError::PoolBusy
            | ApiError::Overloaded
            | ApiError::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::UpstreamRejected { status, .. } | ApiError::ResponseFailed { status, .. } => {
                *status
            }
            ApiError::UsageLimitReached { .. } | ApiError::UpstreamRateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::UpstreamFailed(_) => StatusCode::BAD_GATEWAY,
            ApiError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let resets_at = match self {
            ApiError::UsageLimitReached { resets_at, .. } => *resets_at,
            _ => None,
        };
        openai_error(
            self.status_code(),
            self.retry_after(),
            ErrorBody {
                message: self.to_string(),
                kind: self.kind(),
                param: self.param(),
                code: self.code(),
                resets_at,
            },
        )
    }
}

fn usage_limit_message(resets_at: Option<i64>) -> String {
    let when = resets_at
        .and_then(|at| chrono::DateTime::from_timestamp(at, 0))
        .map(|at| format!(" The earliest reset is at {}.", at.to_rfc3339()))
        .unwrap_or_default();
    format!("Every upstream account has reached its usage limit. Try again later.{when}")
}

/// The four fields of an OpenAI error object, and the one extra some answers carry.
#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body(error: &ApiError) -> serde_json::Value {
        let bytes = error.error_response().into_body().try_into_bytes().unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn errors_have_the_openai_shape() {
        let value = body(&ApiError::ModelNotFound("nope".into()));
        let error = value["error"].as_object().unwrap();
        assert_eq!(error.len(), 4);
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["param"], "model");
        assert_eq!(error["code"], "model_not_found");
        assert!(error["message"].as_str().unwrap().contains("nope"));
    }

    #[test]
    fn waiting_errors_say_how_long() {
        let error = ApiError::UsageLimitReached {
            retry_after_secs: Some(30),
            resets_at: Some(1_900_000_000),
        };
        let value = body(&error);
        assert_eq!(value["error"]["code"], "usage_limit_reached");
        assert_eq!(value["error"]["resets_at"], 1_900_000_000);
        assert!(value["error"]["message"].as_str().unwrap().contains("2030"));
        let response = error.error_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers().get("retry-after").unwrap(), "30");
    }
}
