//! Who is calling: a CRM session (HS256 JWT) or an API key of this tenant.

use crate::app::App;
use crate::domain::{cache_entry::Admitted, jwt};
use crate::error::AppError;
use crate::http::header;
use worker::Request;

pub enum Caller {
    Session(jwt::Claims),
    Key(Admitted),
}

/// An `X-Api-Key` header takes precedence over `Authorization`; every failure is the same 401.
pub async fn authenticate(req: &Request, app: &App<'_>) -> Result<Caller, AppError> {
    if let Some(presented) = header(req, "X-Api-Key") {
        return app.validate_key(&presented).await.map(Caller::Key);
    }
    app.refuse_blocked_client()?;
    let authorization = header(req, "Authorization").ok_or(AppError::Unauthorized)?;
    let token = authorization
        .strip_prefix("Bearer ")
        .or_else(|| authorization.strip_prefix("bearer "))
        .ok_or(AppError::Unauthorized)?
        .trim();
    let secret = app.jwt_secret()?;
    let claims = jwt::verify(token, secret.as_bytes(), app.now as f64 / 1000.0)
        .map_err(|_| AppError::Unauthorized)?;
    if claims.tenant != app.tenant.as_str() {
        return Err(AppError::Unauthorized);
    }
    app.log.set_subject(&format!("session:{}", claims.sub));
    Ok(Caller::Session(claims))
}

/// Managing keys takes an admin session or a key with the admin scope. Returns `createdBy`.
pub async fn require_admin(req: &Request, app: &App<'_>) -> Result<String, AppError> {
    match authenticate(req, app).await? {
        Caller::Session(claims) if claims.is_admin() => Ok(claims.actor()),
        Caller::Key(key) if key.scopes.is_admin() => Ok(format!("apikey:{}", key.key_id)),
        _ => Err(AppError::Forbidden(
            "Managing API keys needs an admin session or a key with the admin scope.".into(),
        )),
    }
}
