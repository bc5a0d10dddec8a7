//! Who is calling: a CRM session (HS256 JWT) or an API key of this tenant.

use crate::app::App;
use crate::domain::{audit::Actor, cache_entry::Admitted, jwt, session};
use crate::error::AppError;
use crate::http::{self, header};
use worker::Request;

pub enum Caller {
    Session(jwt::Claims),
    Key(Admitted),
}

/// An `X-Api-Key` header takes precedence over `Authorization`, which takes precedence over the
/// `__Host-rally_session` cookie; every failure is the same 401.
pub async fn authenticate(req: &Request, app: &App) -> Result<Caller, AppError> {
    if let Some(presented) = header(req, "X-Api-Key") {
        return app.validate_key(&presented).await.map(Caller::Key);
    }
    app.refuse_blocked_client()?;
    let token = match header(req, "Authorization") {
        Some(authorization) => authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))
            .ok_or(AppError::Unauthorized)?
            .trim()
            .to_string(),
        // The settings page's session travels in an HttpOnly cookie, which a browser attaches to
        // cross-site requests too: those must prove they come from this origin.
        None => {
            let cookies = header(req, "Cookie").unwrap_or_default();
            let token = session::session_from_cookies(&cookies).ok_or(AppError::Unauthorized)?;
            let (request_origin, _) = http::origin_and_query(req);
            let method = req.method().to_string();
            let fetch_site = header(req, "Sec-Fetch-Site");
            let origin = header(req, "Origin");
            if !session::same_origin_or_safe(
                &method,
                fetch_site.as_deref(),
                origin.as_deref(),
                &request_origin,
            ) {
                return Err(AppError::Forbidden("Cross-site request refused.".into()));
            }
            token.to_string()
        }
    };
    let secret = app.jwt_secret()?;
    let claims = jwt::verify(
        &token,
        secret.expose().as_bytes(),
        app.now() as f64 / 1000.0,
    )
    .map_err(|_| AppError::Unauthorized)?;
    if claims.tenant != app.tenant().as_str() {
        return Err(AppError::Unauthorized);
    }
    app.log().set_subject(&format!("session:{}", claims.sub));
    Ok(Caller::Session(claims))
}

/// Managing keys takes an admin session or a key with the admin scope. Returns the actor of the
/// changes it makes: `createdBy`, and the client's address.
pub async fn require_admin(req: &Request, app: &App) -> Result<Actor, AppError> {
    let name = match authenticate(req, app).await? {
        Caller::Session(claims) if claims.is_admin() => claims.actor(),
        Caller::Key(key) if key.scopes.is_admin() => format!("apikey:{}", key.key_id),
        _ => {
            return Err(AppError::Forbidden(
                "Managing API keys needs an admin session or a key with the admin scope.".into(),
            ))
        }
    };
    Ok(Actor::new(name, app.client()))
}
