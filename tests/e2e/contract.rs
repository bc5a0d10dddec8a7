//! The API contract: the OpenAPI document served is the file in the repository, and
//! schemathesis, driven by that file, finds no server error, no response off the schemas and no
//! undocumented status against the live Worker.

use crate::harness::*;
use crate::trials;
use std::process::Command;
use std::time::{Duration, Instant};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    trials!("contract":
        the_served_openapi_document_is_the_file_in_the_repository,
        schemathesis_finds_no_failure_against_the_live_worker,
    )
}

/// The document the Worker serves through its assets binding.
const OPENAPI_FILE: &str = "public/api/v1/openapi.json";

fn the_served_openapi_document_is_the_file_in_the_repository() {
    let file = std::fs::read(project_root().join(OPENAPI_FILE)).unwrap();
    let served = get("acme", "/api/v1/openapi.json", &[]);
    assert_eq!(served.status, 200);
    assert_eq!(served.header("Content-Type"), Some("application/json"));
    assert!(
        served.body == file,
        "the served document differs from openapi.json"
    );
    assert_eq!(served.json()["openapi"], "3.1.0");
}

/// Examples per operation and phase; the whole run is also bounded in time.
const MAX_EXAMPLES: &str = "40";
const TIME_LIMIT: Duration = Duration::from_secs(240);

fn schemathesis_finds_no_failure_against_the_live_worker() {
    // The secret-scanning endpoint verifies against a published key list: have one published.
    crate::leaks::publish_keys();
    let port = instance("contract").port;
    let tenant = "contract";
    let report = project_root().join(".e2e/schemathesis.txt");
    let mut child = Command::new(project_root().join(".venv/bin/schemathesis"))
        .arg("run")
        .arg(project_root().join(OPENAPI_FILE))
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .args(["-H", &format!("Host: {tenant}.localhost:{port}")])
        .args([
            "-H",
            &format!("Authorization: Bearer {}", session_token(tenant, "admin")),
        ])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance",
        ])
        .args([
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            "20261124",
            "--no-color",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        .stdout(std::fs::File::create(&report).unwrap())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start schemathesis (installed into .venv by scripts/setup.sh)");
    let deadline = Instant::now() + TIME_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "schemathesis ran over {TIME_LIMIT:?}; see {}",
                report.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(&report).unwrap();
    // The summary's "Test cases:" line reads like "758 generated, 758 passed".
    let generated = output
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(|c: char| c.is_ascii_digit()) && l.contains(" generated"))
        .unwrap_or("(no count)");
    eprintln!("schemathesis: {generated}");
    assert!(status.success(), "schemathesis found failures:\n{output}");
}
