//! One error type for the whole service, rendered to the JSON error body in exactly one place.
//! Internal details are kept for the log and never reach a response body.

use crate::domain::{request_body::BodyError, usage::InvalidQuery};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq)]
pub enum AppError {
    InvalidHost,
    InvalidJson(&'static str),
    Validation {
        field: Option<&'static str>,
        message: String,
    },
    UnknownField(String),
    InvalidCursor,
    Unauthorized,
    Forbidden(String),
    /// A valid key used from a client address outside its allow-list (or with none).
    IpNotAllowed,
    NotFound,
    MethodNotAllowed {
        allow: &'static str,
    },
    KeyRevoked,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited {
        retry_after_seconds: u32,
    },
    OriginUnreachable,
    OriginNotConfigured,
    /// No usable identity signing key: a keyed request is not forwarded without an assertion.
    IdentityNotConfigured,
    /// A management change is saved in D1, but the edge cache could not be updated.
    PropagationFailed,
    /// D1, KV or configuration trouble; the detail is for the log only.
    Unavailable(String),
    /// A bug; the detail is for the log only.
    Internal(String),
}

impl From<BodyError> for AppError {
    fn from(error: BodyError) -> AppError {
        match error {
            BodyError::InvalidJson(why) => AppError::InvalidJson(why),
            BodyError::UnknownField(name) => AppError::UnknownField(name),
            BodyError::Invalid { field, message } => AppError::Validation { field, message },
        }
    }
}

impl From<InvalidQuery> for AppError {
    fn from(error: InvalidQuery) -> AppError {
        AppError::Validation {
            field: Some(error.field),
            message: error.message,
        }
    }
}

impl AppError {
    pub fn validation(field: &'static str, message: impl Into<String>) -> AppError {
        AppError::Validation {
            field: Some(field),
            message: message.into(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            AppError::InvalidHost
            | AppError::InvalidJson(_)
            | AppError::Validation { .. }
            | AppError::UnknownField(_)
            | AppError::InvalidCursor => 400,
            AppError::Unauthorized => 401,
            AppError::Forbidden(_) | AppError::IpNotAllowed => 403,
            AppError::NotFound => 404,
            AppError::MethodNotAllowed { .. } => 405,
            AppError::KeyRevoked => 409,
            AppError::PayloadTooLarge => 413,
            AppError::UnsupportedMediaType => 415,
            AppError::RateLimited { .. } => 429,
            AppError::Internal(_) => 500,
            AppError::OriginUnreachable => 502,
            AppError::OriginNotConfigured
            | AppError::IdentityNotConfigured
            | AppError::PropagationFailed
            | AppError::Unavailable(_) => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::InvalidHost => "invalid_host",
            AppError::InvalidJson(_) => "invalid_json",
            AppError::Validation { .. } => "validation_error",
            AppError::UnknownField(_) => "unknown_field",
            AppError::InvalidCursor => "invalid_cursor",
            AppError::Unauthorized => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::IpNotAllowed => "ip_not_allowed",
            AppError::NotFound => "not_found",
            AppError::MethodNotAllowed { .. } => "method_not_allowed",
            AppError::KeyRevoked => "key_revoked",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::OriginUnreachable => "origin_unreachable",
            AppError::OriginNotConfigured => "origin_not_configured",
            AppError::IdentityNotConfigured => "identity_not_configured",
            AppError::PropagationFailed => "propagation_failed",
            AppError::Unavailable(_) => "service_unavailable",
            AppError::Internal(_) => "internal_error",
        }
    }

    fn message(&self) -> String {
        match self {
            AppError::InvalidHost => "Use your tenant's address, {tenant}.rallycrm.io.".into(),
            AppError::InvalidJson(why) => (*why).into(),
            AppError::Validation { message, .. } => message.clone(),
            AppError::UnknownField(_) => "This field is not accepted here.".into(),
            AppError::InvalidCursor => {
                "The cursor is not one this API issued for this tenant.".into()
            }
            // One message for every kind of bad credential, so that a response never tells an
            // unknown key from a revoked, expired or foreign one.
            AppError::Unauthorized => "A valid API key or session token is required.".into(),
            AppError::Forbidden(message) => message.clone(),
            // Neither the list nor the address it saw: the caller learns only that this key is
            // limited to certain addresses.
            AppError::IpNotAllowed => {
                "This API key may not be used from this client address.".into()
            }
            AppError::NotFound => "Not found.".into(),
            AppError::MethodNotAllowed { allow } => format!("Allowed methods: {allow}."),
            AppError::KeyRevoked => "This API key is revoked and can no longer be changed.".into(),
            AppError::PayloadTooLarge => "The request body is over 16 KiB.".into(),
            AppError::UnsupportedMediaType => "Send the body as application/json.".into(),
            AppError::RateLimited { .. } => "Too many failed attempts; retry later.".into(),
            AppError::OriginUnreachable => "The CRM origin could not be reached.".into(),
            AppError::OriginNotConfigured => "The CRM origin is not configured.".into(),
            AppError::IdentityNotConfigured => {
                "The edge cannot sign identity assertions; the request was not forwarded.".into()
            }
            AppError::PropagationFailed => "The change is saved, but the edge cache could not be \
                 updated: it takes effect everywhere within 6 minutes. Repeat the call to \
                 propagate it now; repeating it is safe."
                .into(),
            AppError::Unavailable(_) => {
                "The service is temporarily unavailable; retry later.".into()
            }
            AppError::Internal(_) => "Internal error.".into(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            AppError::Validation { field, .. } => *field,
            AppError::UnknownField(field) => Some(field.as_str()),
            AppError::InvalidCursor => Some("cursor"),
            _ => None,
        }
    }

    /// Extra response headers that this error requires.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            AppError::Unauthorized => vec![(
                "WWW-Authenticate",
                r#"Bearer realm="rallycrm", ApiKey realm="rallycrm""#.into(),
            )],
            AppError::MethodNotAllowed { allow } => vec![("Allow", (*allow).into())],
            AppError::RateLimited {
                retry_after_seconds,
            } => vec![("Retry-After", retry_after_seconds.to_string())],
            _ => Vec::new(),
        }
    }

    /// `{"error": {"code", "message", "field"?}}`: the one place the error body is written.
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Detail<'a>,
        }
        #[derive(Serialize)]
        struct Detail<'a> {
            code: &'a str,
            message: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            field: Option<&'a str>,
        }
        let body = Body {
            error: Detail {
                code: self.code(),
                message: self.message(),
                field: self.field(),
            },
        };
        serde_json::to_string(&body).unwrap_or_default()
    }

    /// What the log may say about this error, including internal detail but never a secret.
    pub fn log_detail(&self) -> Option<&str> {
        match self {
            AppError::Unavailable(detail) | AppError::Internal(detail) => Some(detail),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn internal_detail_never_reaches_the_body() {
        for error in [
            AppError::Internal("panic at db.rs:12".into()),
            AppError::Unavailable("D1_ERROR: no such table".into()),
        ] {
            assert!(!error.body().contains("db.rs") && !error.body().contains("D1_ERROR"));
            assert!(error.log_detail().is_some());
        }
    }

    #[test]
    fn body_has_code_message_and_field_when_there_is_one() {
        let body: serde_json::Value =
            serde_json::from_str(&AppError::validation("name", "too long").body()).unwrap();
        assert_eq!(
            body,
            json!({"error": {"code": "validation_error", "message": "too long", "field": "name"}})
        );
        let body: serde_json::Value = serde_json::from_str(&AppError::NotFound.body()).unwrap();
        assert_eq!(body["error"].as_object().unwrap().len(), 2);
    }
}
