//! `/api/v1/api-keys`: parse the request, call the service, build the response.

use super::auth::{authenticate, require_admin, Caller};
use crate::app::App;
use crate::domain::usage::{self, UsageQuery};
use crate::domain::{cursor::List, model::ApiKeyResponse, request_body};
use crate::error::AppError;
use crate::http::{self, read_json_body};
use crate::query;
use uuid::Uuid;
use worker::{Request, Response};

pub async fn list(req: Request, app: &App) -> Result<Response, AppError> {
    require_admin(&req, app).await?;
    let (origin, query) = http::origin_and_query(&req);
    let pager = super::pager(app, List::ApiKeys);
    let page = pager.parse(&query::pairs(query.as_deref().unwrap_or_default()))?;
    let (keys, next) = app
        .keys()?
        .list(app.tenant(), page.limit, page.after)
        .await?;
    let body: Vec<ApiKeyResponse> = keys.iter().map(|k| k.to_response(app.now())).collect();
    let mut response = http::json(200, &body)?;
    if let Some(next) = next {
        let link = pager.next_link(&format!("{origin}{}", req.path()), &[], page.limit, &next)?;
        response
            .headers_mut()
            .set("Link", &link)
            .map_err(http::internal("header"))?;
    }
    Ok(response)
}

pub async fn create(mut req: Request, app: &App) -> Result<Response, AppError> {
    let actor = require_admin(&req, app).await?;
    let body = read_json_body(&mut req, false).await?;
    let request = request_body::parse_create(&body, app.now())?;
    let (record, key) = app
        .keys()?
        .create(app.tenant(), request, &actor, app.now())
        .await?;
    app.log().set_key(record.id);
    http::no_store(http::json(201, &record.to_created_response(&key))?)
}

pub async fn get(req: Request, app: &App, id: Option<Uuid>) -> Result<Response, AppError> {
    require_admin(&req, app).await?;
    let key = app
        .keys()?
        .get(app.tenant(), id.ok_or(AppError::NotFound)?)
        .await?;
    http::json(200, &key.to_response(app.now()))
}

pub async fn update(mut req: Request, app: &App, id: Option<Uuid>) -> Result<Response, AppError> {
    let actor = require_admin(&req, app).await?;
    let id = id.ok_or(AppError::NotFound)?;
    let change = request_body::parse_patch(&read_json_body(&mut req, false).await?)?;
    let key = app
        .keys()?
        .update(app.tenant(), id, change, &actor, app.now())
        .await?;
    http::json(200, &key.to_response(app.now()))
}

pub async fn revoke(req: Request, app: &App, id: Option<Uuid>) -> Result<Response, AppError> {
    let actor = require_admin(&req, app).await?;
    app.keys()?
        .revoke(
            app.tenant(),
            id.ok_or(AppError::NotFound)?,
            &actor,
            app.now(),
        )
        .await?;
    Ok(Response::empty()
        .map_err(http::internal("response"))?
        .with_status(204))
}

pub async fn rotate(mut req: Request, app: &App, id: Option<Uuid>) -> Result<Response, AppError> {
    let actor = require_admin(&req, app).await?;
    let id = id.ok_or(AppError::NotFound)?;
    let grace_seconds = request_body::parse_rotate(&read_json_body(&mut req, true).await?)?;
    let (record, key) = app
        .keys()?
        .rotate(app.tenant(), id, grace_seconds, &actor, app.now())
        .await?;
    http::no_store(http::json(201, &record.to_created_response(&key))?)
}

/// A key's usage: buckets of counts per outcome, and where it was last used from. Revoked and
/// expired keys have one too; another tenant's key is not found.
pub async fn usage(req: Request, app: &App, id: Option<Uuid>) -> Result<Response, AppError> {
    require_admin(&req, app).await?;
    let id = id.ok_or(AppError::NotFound)?;
    let (_, query) = http::origin_and_query(&req);
    let query = UsageQuery::parse(
        &query::pairs(query.as_deref().unwrap_or_default()),
        app.now(),
    )?;
    let (last, buckets) = app
        .store()?
        .usage_report(app.tenant(), id, &query)
        .await?
        .ok_or(AppError::NotFound)?;
    http::json(200, &usage::report(id, &query, last, buckets))
}

/// Lets an integration test its connection: the calling key's own record.
pub async fn current(req: Request, app: &App) -> Result<Response, AppError> {
    match authenticate(&req, app).await? {
        Caller::Key(admitted) => {
            let key = app.keys()?.get(app.tenant(), admitted.key_id).await?;
            http::json(200, &key.to_response(app.now()))
        }
        Caller::Session(_) => Err(AppError::Forbidden(
            "This endpoint describes the calling API key; send X-Api-Key.".into(),
        )),
    }
}
