//! HTTP requests to the Worker instances, and their responses.

use super::credentials::remember_secret;
use super::worker;
use serde_json::Value;
use std::io::Read;
use std::sync::OnceLock;
use std::time::Duration;

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// `error.code` of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .redirects(0)
            .build()
    })
}

/// Sends a request to the main Worker with `Host: {tenant}.localhost:{port}`, or with the Host
/// given when `tenant` contains a dot or a colon.
pub fn request(
    method: &str,
    tenant: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    send(worker().port, method, tenant, path, headers, body)
}

/// Sends a request to the Worker on `port`. Unless the test sets `CF-Connecting-IP`, each request
/// comes from a random documentation address, so that the failed-authentication rate limit of
/// one test never counts another test's failures. A test that sets it to the empty string
/// sends no `CF-Connecting-IP` at all.
pub fn send(
    port: u16,
    method: &str,
    tenant: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    let host = if tenant.contains('.') || tenant.contains(':') {
        tenant.to_string()
    } else {
        format!("{tenant}.localhost:{port}")
    };
    let mut req = agent()
        .request(method, &format!("http://127.0.0.1:{port}{path}"))
        .set("Host", &host);
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("CF-Connecting-IP"))
    {
        let mut random = [0u8; 4];
        getrandom::fill(&mut random).unwrap();
        req = req.set(
            "CF-Connecting-IP",
            &format!(
                "2001:db8::{:x}:{:x}",
                u16::from_be_bytes([random[0], random[1]]),
                u16::from_be_bytes([random[2], random[3]])
            ),
        );
    }
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("CF-Connecting-IP") && value.is_empty() {
            continue;
        }
        req = req.set(name, value);
    }
    let result = match body {
        Some(bytes) => req.send_bytes(bytes),
        None => req.call(),
    };
    let response = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .iter()
        .flat_map(|n| {
            response
                .all(n)
                .into_iter()
                .map(move |v| (n.clone(), v.to_string()))
        })
        .collect();
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).unwrap();
    let response = Response {
        status,
        headers,
        body,
    };
    // Remember every key the API reveals.
    if let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&response.body) {
        if let Some(Value::String(key)) = fields.get("key") {
            remember_secret(key);
        }
    }
    response
}

pub fn get(tenant: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    request("GET", tenant, path, headers, None)
}

pub fn send_json(
    method: &str,
    tenant: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> Response {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    request(
        method,
        tenant,
        path,
        &all,
        Some(body.to_string().as_bytes()),
    )
}
