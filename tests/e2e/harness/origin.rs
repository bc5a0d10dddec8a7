//! The recording origin: a small real HTTP server on loopback standing in for the CRM origin.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When it arrived, in Unix seconds: an assertion is checked against this time.
    pub received_at: i64,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Where the origin serves the secret-scanning key list that every instance is pointed at.
pub const SECRET_SCANNING_KEYS_PATH: &str = "/secret-scanning/keys";

/// Answers 200 and records every request it receives.
pub struct Origin {
    pub port: u16,
    received: Arc<Mutex<Vec<Recorded>>>,
    /// Paths answered with a body of their own (the secret-scanning key list).
    served: Arc<Mutex<HashMap<String, String>>>,
}

impl Origin {
    pub fn start() -> Origin {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("origin listens");
        let port = server.server_addr().to_ip().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let served: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let bodies = served.clone();
        std::thread::spawn(move || {
            for mut request in server.incoming_requests() {
                let mut body = Vec::new();
                let _ = request.as_reader().read_to_end(&mut body);
                let recorded = Recorded {
                    method: request.method().to_string(),
                    url: request.url().to_string(),
                    headers: request
                        .headers()
                        .iter()
                        .map(|h| (h.field.to_string(), h.value.to_string()))
                        .collect(),
                    body,
                    received_at: super::now_seconds(),
                };
                let body = bodies.lock().unwrap().get(&recorded.url).cloned();
                sink.lock().unwrap().push(recorded);
                let header =
                    tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap();
                let body = body.unwrap_or_else(|| r#"{"origin":"ok"}"#.to_string());
                let _ = request.respond(tiny_http::Response::from_string(body).with_header(header));
            }
        });
        Origin {
            port,
            received,
            served,
        }
    }

    /// Answers `path` with `body` from now on.
    pub fn serve(&self, path: &str, body: &str) {
        self.served
            .lock()
            .unwrap()
            .insert(path.to_string(), body.to_string());
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request the origin has received so far.
    pub fn all(&self) -> Vec<Recorded> {
        self.received.lock().unwrap().clone()
    }

    /// Requests the origin received for exactly this path and query.
    pub fn received(&self, url: &str) -> Vec<Recorded> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.url == url)
            .cloned()
            .collect()
    }
}

/// A path no other test uses, so that what the origin received can be attributed.
pub fn unique_path(label: &str) -> String {
    let mut random = [0u8; 6];
    getrandom::fill(&mut random).unwrap();
    format!("/crm/{label}/{}", hex::encode(random))
}
