//! Admin request bodies: read through `intake` — decoded, within [`super::MAX_BODY_BYTES`] and
//! the body deadline — by the [`Body`] extractor, then parsed as JSON. No admin handler reads a
//! body any other way.

use std::future::{ready, Future};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use super::error::AdminError;
use crate::intake::{self, BodyLimits};

/// A request's whole body, decoded. The admin app registers the [`BodyLimits`] it is read with.
pub struct Body(pub web::Bytes);

impl FromRequest for Body {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Body, AdminError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let Some(limits) = req.app_data::<BodyLimits>().copied() else {
            return Box::pin(ready(Err(AdminError::Internal)));
        };
        let read = intake::read_body(req.headers(), payload.take(), limits);
        Box::pin(async move { Ok(Body(read.await?)) })
    }
}

/// The body as JSON of type `T`, or a 400 saying what is wrong with it.
pub fn json_body<T: DeserializeOwned>(body: &Body) -> Result<T, AdminError> {
    serde_json::from_slice(&body.0)
        .map_err(|e| AdminError::invalid(format!("The request body is not valid here: {e}."), None))
}
