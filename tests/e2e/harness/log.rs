//! The Worker's log: one structured line per request, and the check that no secret reached it.

use super::credentials::{remembered_secrets, sha256_hex, IDENTITY_PRIVATE_PARTS};
use super::worker;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// The structured log line of one request to the main Worker, found by its X-Request-Id.
/// wrangler writes logs a moment after the response, so this waits for it.
pub fn log_line(request_id: &str) -> Value {
    log_line_in(&worker().log_path, request_id)
}

/// The same, in the log of any instance.
pub fn log_line_in(log_path: &Path, request_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = fs::read_to_string(log_path).unwrap_or_default();
        let found = log
            .lines()
            .filter_map(|l| l.find('{').map(|i| &l[i..]))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["requestId"] == request_id);
        if let Some(line) = found {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no log line for request {request_id}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every secret the run handled, and each key's SHA-256, checked against every instance's whole
/// log (each `*.log` of the run directory).
pub fn secrets_found_in_logs(run_dir: &Path) -> Vec<String> {
    let mut log = String::new();
    for entry in fs::read_dir(run_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            log.push_str(&fs::read_to_string(path).unwrap());
        }
    }
    let mut leaked = Vec::new();
    let signing_keys = IDENTITY_PRIVATE_PARTS.iter().map(|d| d.to_string());
    for secret in remembered_secrets().into_iter().chain(signing_keys) {
        let mut forms = vec![secret.clone(), sha256_hex(&secret)];
        if let Some((_, signature)) = secret.rsplit_once('.') {
            forms.push(signature.to_string());
        }
        leaked.extend(
            forms
                .into_iter()
                .filter(|f| f.len() >= 16 && log.contains(f.as_str())),
        );
    }
    leaked
}
