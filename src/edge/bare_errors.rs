//! The OpenAI error shape for error answers no relay handler wrote. actix-web makes some itself
//! — an extractor's `text/plain` 400, an error a middleware passes up — and this middleware, on
//! both planes, gives each one `{"error": {...}}` for its status, keeping its other headers.
//!
//! Not reachable from here: what the HTTP/1 dispatcher writes below every service (a malformed
//! request head → 400, a head too large → 431, a head not sent within the client request
//! timeout → 408); `wire` gives those their OpenAI body on the connection itself.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};

use super::error::{openai_error, ErrorBody};

/// Middleware: an error answer that is not JSON becomes the OpenAI error for its status.
pub async fn shape_bare_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let response = match next.call(req).await {
        Ok(response) => response.map_into_boxed_body(),
        // Passed up by a middleware: the server asks the error for its answer, so it is handed
        // on as one that answers in the OpenAI shape (the request, needed for a response here,
        // went with the error; it cannot be kept aside: routing needs it unshared).
        Err(error) => return Err(BareError(error.as_response_error().status_code()).into()),
    };
    if !is_bare_error(response.response()) {
        return Ok(response);
    }
    let (request, bare) = response.into_parts();
    let mut shaped = openai_error(bare.status(), None, body_for(bare.status()));
    for (name, value) in bare.headers() {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            shaped.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(ServiceResponse::new(request, shaped))
}

/// An error known only by its status.
#[derive(Debug, thiserror::Error)]
#[error("{}", body_for(*.0).message)]
struct BareError(StatusCode);

impl ResponseError for BareError {
    fn status_code(&self) -> StatusCode {
        self.0
    }

    fn error_response(&self) -> HttpResponse {
        openai_error(self.0, None, body_for(self.0))
    }
}

/// An error status whose body is not the relay's JSON (empty, or actix-web's text).
fn is_bare_error(response: &HttpResponse) -> bool {
    let json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    let status = response.status();
    (status.is_client_error() || status.is_server_error()) && !json
}

/// What can be said of an error known only by its status: its reason, as message and code.
fn body_for(status: StatusCode) -> ErrorBody<'static> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let code = match status {
        // The code the relay's own 413s carry.
        StatusCode::PAYLOAD_TOO_LARGE => "request_too_large".to_owned(),
        _ => reason.to_ascii_lowercase().replace([' ', '-'], "_"),
    };
    ErrorBody {
        message: format!("{reason}."),
        kind: match status.is_server_error() {
            true => "server_error",
            false => "invalid_request_error",
        },
        param: None,
        code: Some(code),
        resets_at: None,
    }
}

#[cfg(test)]
mod tests {
    use actix_web::middleware::from_fn;
    use actix_web::{test, web, App};
    use serde_json::Value;

    use super::*;

    async fn pass_an_error_up(
        _: ServiceRequest,
        _: Next<BoxBody>,
    ) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
        Err(actix_web::error::ErrorRequestTimeout("too slow"))
    }

    async fn answer_to(uri: &str) -> (StatusCode, Option<String>, Value) {
        let app = App::new()
            .route("/empty", web::get().to(HttpResponse::MethodNotAllowed))
            .route(
                "/text",
                web::get().to(|| async {
                    HttpResponse::BadRequest()
                        .insert_header(("retry-after", "3"))
                        .body("Query deserialize error: duplicate field")
                }),
            )
            .route(
                "/failed",
                web::get().to(|| async {
                    Err::<HttpResponse, _>(actix_web::error::ErrorServiceUnavailable("gone"))
                }),
            )
            .service(
                web::scope("/passed-up")
                    .wrap(from_fn(pass_an_error_up))
                    .route("", web::get().to(HttpResponse::Ok)),
            )
            .route(
                "/json",
                web::get().to(|| async { HttpResponse::NotFound().json([1]) }),
            )
            .wrap(from_fn(shape_bare_errors));
        let app = test::init_service(app).await;
        let request = test::TestRequest::get().uri(uri).to_request();
        // An error passed up is answered by the server, as the error's own response.
        let response = match test::try_call_service(&app, request).await {
            Ok(response) => response.into_parts().1,
            Err(error) => error.error_response(),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        (status, retry_after, serde_json::from_slice(&body).unwrap())
    }

    #[actix_web::test]
    async fn error_answers_the_relay_did_not_write_get_the_openai_shape() {
        let (status, _, body) = answer_to("/empty").await;
        assert_eq!(status, 405);
        let error = body["error"].as_object().unwrap();
        assert_eq!(error.len(), 4);
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["code"], "method_not_allowed");
        assert_eq!(error["message"], "Method Not Allowed.");

        let (status, retry_after, body) = answer_to("/text").await;
        assert_eq!((status.as_u16(), retry_after.as_deref()), (400, Some("3")));
        assert_eq!(body["error"]["code"], "bad_request");

        let (status, _, body) = answer_to("/failed").await;
        assert_eq!(status, 503);
        assert_eq!(body["error"]["type"], "server_error");
        assert_eq!(body["error"]["code"], "service_unavailable");

        let (status, _, body) = answer_to("/passed-up").await;
        assert_eq!(status, 408);
        assert_eq!(body["error"]["code"], "request_timeout");
    }

    #[actix_web::test]
    async fn the_relays_own_json_errors_pass_untouched() {
        let (status, _, body) = answer_to("/json").await;
        assert_eq!((status.as_u16(), body), (404, serde_json::json!([1])));
    }
}
