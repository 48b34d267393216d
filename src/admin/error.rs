//! Failures of the admin plane, answered in the same OpenAI error shape as the data plane.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::bounds::Invalid;
use crate::edge::error::{openai_error, ErrorBody};
use crate::intake::IntakeError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("This is the codex-relay admin plane: send an admin token as `Authorization: Bearer …` (create one with `codex-relay admin-token create --scope read|write`).")]
    MissingToken,
    #[error("Incorrect admin token provided.")]
    InvalidToken,
    #[error("This admin token has the read scope; changing anything needs a token with the write scope.")]
    InsufficientScope,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    Invalid {
        message: String,
        param: Option<&'static str>,
    },
    /// A body that could not be read within its limits (`intake`).
    #[error(transparent)]
    Body(#[from] IntakeError),
    #[error("Unknown admin URL: {method} {path}.")]
    RouteNotFound { method: String, path: String },
    #[error("Method not allowed: {method} {path}.")]
    MethodNotAllowed { method: String, path: String },
    #[error("The relay is busy. Try again shortly.")]
    Unavailable,
    /// A refused or failed operation with its own status and code (logins, refreshes); the
    /// message is safe to show (no secret).
    #[error("{message}")]
    Failed {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    #[error("Internal error in the relay. The request id identifies it in the relay's logs.")]
    Internal,
}

impl AdminError {
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> AdminError {
        AdminError::Invalid {
            message: message.into(),
            param,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            AdminError::InsufficientScope => "permission_error",
            AdminError::Unavailable => "service_unavailable",
            AdminError::Internal => "server_error",
            AdminError::Body(error) => error.kind(),
            AdminError::Failed { status, .. } => match status.as_u16() {
                403 => "permission_error",
                429 => "rate_limit_error",
                500.. => "server_error",
                _ => "invalid_request_error",
            },
            _ => "invalid_request_error",
        }
    }

    /// The error's `code`, as the body names it.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            AdminError::MissingToken => None,
            AdminError::InvalidToken => Some("invalid_admin_token"),
            AdminError::InsufficientScope => Some("insufficient_scope"),
            AdminError::NotFound(_) => Some("not_found"),
            AdminError::Conflict(_) => Some("conflict"),
            AdminError::Invalid { .. } => Some("invalid_value"),
            AdminError::Body(error) => Some(error.code()),
            AdminError::RouteNotFound { .. } => Some("unknown_url"),
            AdminError::MethodNotAllowed { .. } => Some("method_not_allowed"),
            AdminError::Unavailable => Some("unavailable"),
            AdminError::Internal => Some("internal_error"),
            AdminError::Failed { code, .. } => Some(code),
        }
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            AdminError::MissingToken | AdminError::InvalidToken => StatusCode::UNAUTHORIZED,
            AdminError::InsufficientScope => StatusCode::FORBIDDEN,
            AdminError::NotFound(_) | AdminError::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::Invalid { .. } => StatusCode::BAD_REQUEST,
            AdminError::Body(error) => error.status(),
            AdminError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            AdminError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            AdminError::Failed { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let retry_after = matches!(
            self,
            AdminError::Unavailable | AdminError::Body(IntakeError::Overloaded)
        )
        .then_some(1);
        let param = match self {
            AdminError::Invalid { param, .. } => *param,
            _ => None,
        };
        openai_error(
            self.status_code(),
            retry_after,
            ErrorBody {
                message: self.to_string(),
                kind: self.kind(),
                param,
                code: self.code().map(str::to_owned),
                resets_at: None,
            },
        )
    }
}

/// A value the operator sent that is out of bounds: a 400 naming the field.
impl From<Invalid> for AdminError {
    fn from(error: Invalid) -> AdminError {
        AdminError::invalid(error.to_string(), Some(error.field))
    }
}

/// A store failure seen by an admin handler: "not found" is the caller's; anything else is ours
/// (its cause is logged by the handler, never sent).
impl From<StoreError> for AdminError {
    fn from(error: StoreError) -> AdminError {
        match error {
            StoreError::NotFound(message) => AdminError::NotFound(message),
            StoreError::Conflict(message) => AdminError::Conflict(message),
            _ => AdminError::Internal,
        }
    }
}
