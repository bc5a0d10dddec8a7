//! `/api/v1/audit-events`: the tenant's audit log, newest first, paged like the key list.

use super::auth::require_admin;
use crate::app::App;
use crate::domain::audit::{AuditAction, AuditEventResponse, EventFilter};
use crate::domain::cursor::List;
use crate::error::AppError;
use crate::http;
use crate::query;
use worker::{Request, Response};

pub async fn list(req: Request, app: &App) -> Result<Response, AppError> {
    require_admin(&req, app).await?;
    let (origin, query) = http::origin_and_query(&req);
    let pairs = query::pairs(query.as_deref().unwrap_or_default());
    let pager = super::pager(app, List::AuditEvents);
    let page = pager.parse(&pairs)?;
    // Any well-formed id is a filter: one of another tenant, or of no key, finds nothing. As
    // with limit, every occurrence is checked and the last one counts.
    let mut filter = EventFilter::default();
    for (name, value) in &pairs {
        match name.as_ref() {
            "keyId" => {
                filter.key_id = Some(super::key_id(value).ok_or_else(|| {
                    AppError::validation("keyId", "keyId must be an API key's id (a UUID).")
                })?)
            }
            "action" => {
                filter.action = Some(AuditAction::parse(value).ok_or_else(|| {
                    AppError::validation(
                        "action",
                        "action must be one of api_key.created, api_key.updated, \
                         api_key.rotated, api_key.revoked, api_key.leaked.",
                    )
                })?)
            }
            _ => {}
        }
    }
    let (events, next) = app
        .keys()?
        .audit_events(app.tenant(), filter, page.limit, page.after)
        .await?;
    let body: Vec<AuditEventResponse> = events.iter().map(|e| e.to_response()).collect();
    let mut response = http::json(200, &body)?;
    if let Some(next) = next {
        let filters: Vec<(&str, String)> = [
            filter.key_id.map(|id| ("keyId", id.to_string())),
            filter
                .action
                .map(|action| ("action", action.as_str().to_string())),
        ]
        .into_iter()
        .flatten()
        .collect();
        let link = pager.next_link(
            &format!("{origin}{}", req.path()),
            &filters,
            page.limit,
            &next,
        )?;
        response
            .headers_mut()
            .set("Link", &link)
            .map_err(http::internal("header"))?;
    }
    Ok(response)
}
