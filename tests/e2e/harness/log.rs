//! The Worker's log: one structured line per request, and the check that no secret reached it,
//! nor any audit event the Worker stored.

use super::credentials::{remembered_secrets, sha256_hex, IDENTITY_PRIVATE_PARTS};
use super::{instances, worker};
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
    secrets_found_in(&log)
}

/// The same check against every audit event the run stored, in every instance whose D1 has the
/// audit_events table: each row, every column, as wrangler prints it. Returns the number of
/// events read, and the secrets found.
pub fn secrets_found_in_audit_events() -> (usize, Vec<String>) {
    let outputs: Vec<String> = std::thread::scope(|scope| {
        let readers: Vec<_> = instances()
            .iter()
            .filter(|instance| instance.migrated)
            .map(|instance| {
                scope.spawn(move || {
                    instance.wrangler(
                        &[
                            "d1",
                            "execute",
                            "DB",
                            "--local",
                            "--json",
                            "--command",
                            "SELECT * FROM audit_events",
                        ],
                        "read audit_events",
                    )
                })
            })
            .collect();
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut events = 0;
    for output in &outputs {
        let json: Value = serde_json::from_str(output)
            .unwrap_or_else(|e| panic!("wrangler's --json output ({e}): {output}"));
        events += json[0]["results"]
            .as_array()
            .unwrap_or_else(|| panic!("no results in {output}"))
            .len();
    }
    (events, secrets_found_in(&outputs.concat()))
}

/// Which of the run's secrets `text` holds: each as it is, its SHA-256 (a key's stored form)
/// and, for a JWT, its signature alone.
fn secrets_found_in(text: &str) -> Vec<String> {
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
                .filter(|f| f.len() >= 16 && text.contains(f.as_str())),
        );
    }
    leaked
}
