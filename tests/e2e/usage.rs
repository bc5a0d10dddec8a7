//! Usage per key: each keyed request counted with its outcome, sent on the queue by its isolate,
//! folded into D1 by the consumer, and read back from `GET /api/v1/api-keys/{id}/usage`; a
//! missing queue that costs no request; and the daily clean-up of old rows.

use crate::edge::{chrono_in, wait_until_past};
use crate::harness::*;
use crate::trials;
use serde_json::{json, Value};
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    trials!("usage":
        allowed_and_forbidden_requests_show_in_the_usage_report_within_15_seconds,
        attempts_with_a_revoked_key_count_as_revoked_and_do_not_move_last_used,
        attempts_with_an_expired_key_count_as_expired,
        requests_from_outside_the_allow_list_count_as_ip_denied_and_do_not_move_last_used,
        an_isolate_sends_its_counts_at_most_about_once_a_second,
        the_usage_report_refuses_each_bad_parameter_naming_it,
        another_tenants_or_an_unknown_key_has_no_usage_report,
        a_request_is_unaffected_when_its_usage_cannot_be_sent,
        the_daily_clean_up_removes_usage_older_than_90_days,
        the_settings_page_charts_a_keys_usage_in_chromium,
    )
}

/// SPEC: locally, counts appear within 15 s.
const WITHIN: Duration = Duration::from_secs(15);
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn usage_of(tenant: &TestTenant, id: &str, query: &str) -> Response {
    get(
        &tenant.name,
        &format!("/api/v1/api-keys/{id}/usage{query}"),
        &tenant.admin_headers(),
    )
}

/// Each outcome summed over the report's buckets.
fn totals(report: &Value) -> Value {
    let mut totals =
        json!({"allowed": 0, "forbidden": 0, "ipDenied": 0, "revoked": 0, "expired": 0});
    for bucket in report["buckets"].as_array().unwrap() {
        for (outcome, total) in totals.as_object_mut().unwrap() {
            *total = json!(total.as_u64().unwrap() + bucket[outcome].as_u64().unwrap());
        }
    }
    totals
}

/// Polls the report until its totals are `expected`, for at most 15 s; returns the report.
fn wait_for_totals(tenant: &TestTenant, id: &str, query: &str, expected: Value) -> Value {
    let deadline = Instant::now() + WITHIN;
    loop {
        let response = usage_of(tenant, id, query);
        assert_eq!(response.status, 200, "{}", response.text());
        let report = response.json();
        if totals(&report) == expected {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "after {WITHIN:?} the counts are {} and not {expected}",
            totals(&report)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn allowed_and_forbidden_requests_show_in_the_usage_report_within_15_seconds() {
    let tenant = TestTenant::new("usage");
    let created = tenant.create_key(json!({"name": "counted", "scopes": "read"}));
    let (key, id) = (
        created["key"].as_str().unwrap(),
        created["id"].as_str().unwrap(),
    );
    let from = [("X-Api-Key", key), ("CF-Connecting-IP", "203.0.113.77")];
    let started = Instant::now();
    for _ in 0..5 {
        let response = get(&tenant.name, &unique_path("usage"), &from);
        assert_eq!(response.status, 200, "{}", response.text());
        let line = log_line(response.header("X-Request-Id").unwrap());
        assert_eq!(line["usage"], "allowed", "{line}");
    }
    for _ in 0..2 {
        let response = request("POST", &tenant.name, &unique_path("usage"), &from, None);
        assert_eq!(response.status, 403, "{}", response.text());
    }
    let expected = json!({"allowed": 5, "forbidden": 2, "ipDenied": 0, "revoked": 0, "expired": 0});
    let report = wait_for_totals(&tenant, id, "", expected.clone());
    eprintln!("usage: counts shown after {:?}", started.elapsed());
    assert_eq!(report["keyId"], id);
    assert_eq!(report["granularity"], "day");
    assert_eq!(report["buckets"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["lastUsedIp"], "203.0.113.77");
    let country = &report["lastUsedCountry"];
    assert!(
        country.is_null() || country.as_str().is_some_and(|c| c.len() == 2),
        "{country}"
    );
    // lastUsedAt follows from the counts, on the report and on the key alike.
    let last_used = report["lastUsedAt"].as_str().unwrap();
    assert_eq!(tenant.key(id)["lastUsedAt"], last_used);
    // By hour, the same counts, in the current hour's bucket.
    let by_hour = usage_of(&tenant, id, "?granularity=hour").json();
    assert_eq!(totals(&by_hour), expected);
    let bucket = &by_hour["buckets"][0];
    assert!(
        bucket["start"].as_str().unwrap().ends_with(":00:00Z"),
        "{bucket}"
    );
    assert_eq!(by_hour["from"].as_str().unwrap().len(), 20);
}

fn attempts_with_a_revoked_key_count_as_revoked_and_do_not_move_last_used() {
    let tenant = TestTenant::new("usage-revoked");
    let created = tenant.create_key(json!({"name": "to revoke"}));
    let (key, id) = (
        created["key"].as_str().unwrap(),
        created["id"].as_str().unwrap(),
    );
    let used = get(
        &tenant.name,
        &unique_path("usage"),
        &[("X-Api-Key", key), ("CF-Connecting-IP", "198.51.100.20")],
    );
    assert_eq!(used.status, 200);
    tenant.revoke(id);
    for _ in 0..3 {
        let attempt = get(
            &tenant.name,
            &unique_path("usage"),
            &[("X-Api-Key", key), ("CF-Connecting-IP", "198.51.100.99")],
        );
        assert_eq!(attempt.status, 401);
        let line = log_line(attempt.header("X-Request-Id").unwrap());
        assert_eq!(line["usage"], "revoked", "{line}");
    }
    // Another tenant's Host with the same key counts for no one.
    let other = TestTenant::new("usage-other");
    let foreign = get(&other.name, &unique_path("usage"), &[("X-Api-Key", key)]);
    assert_eq!(foreign.status, 401);
    assert!(log_line(foreign.header("X-Request-Id").unwrap())["usage"].is_null());
    let report = wait_for_totals(
        &tenant,
        id,
        "",
        json!({"allowed": 1, "forbidden": 0, "ipDenied": 0, "revoked": 3, "expired": 0}),
    );
    assert_eq!(report["lastUsedIp"], "198.51.100.20");
}

fn attempts_with_an_expired_key_count_as_expired() {
    let tenant = TestTenant::new("usage-expired");
    let created = tenant.create_key(json!({"name": "short-lived", "expiresAt": chrono_in(2)}));
    let (key, id) = (
        created["key"].as_str().unwrap(),
        created["id"].as_str().unwrap(),
    );
    wait_until_past(2);
    for _ in 0..2 {
        let attempt = get(&tenant.name, &unique_path("usage"), &[("X-Api-Key", key)]);
        assert_eq!(attempt.status, 401);
    }
    let report = wait_for_totals(
        &tenant,
        id,
        "",
        json!({"allowed": 0, "forbidden": 0, "ipDenied": 0, "revoked": 0, "expired": 2}),
    );
    assert_eq!(report["lastUsedAt"], Value::Null);
}

fn requests_from_outside_the_allow_list_count_as_ip_denied_and_do_not_move_last_used() {
    let tenant = TestTenant::new("usage-ip");
    let created = tenant.create_key(json!({"name": "office", "allowedIps": ["203.0.113.0/24"]}));
    let (key, id) = (
        created["key"].as_str().unwrap(),
        created["id"].as_str().unwrap(),
    );
    let from = |ip: &str| {
        get(
            &tenant.name,
            &unique_path("usage"),
            &[("X-Api-Key", key), ("CF-Connecting-IP", ip)],
        )
    };
    assert_eq!(from("203.0.113.9").status, 200);
    for outside in ["198.51.100.1", "2001:db8::1"] {
        let refused = from(outside);
        assert_eq!(refused.code(), "ip_not_allowed");
        let line = log_line(refused.header("X-Request-Id").unwrap());
        assert_eq!(line["usage"], "ipDenied", "{line}");
    }
    let report = wait_for_totals(
        &tenant,
        id,
        "",
        json!({"allowed": 1, "forbidden": 0, "ipDenied": 2, "revoked": 0, "expired": 0}),
    );
    assert_eq!(report["lastUsedIp"], "203.0.113.9");
}

/// Each request that starts a send says so in its log line; within a burst, sends are about a
/// second apart, so a burst of N seconds sets off at most N + 1 of them.
fn an_isolate_sends_its_counts_at_most_about_once_a_second() {
    let tenant = TestTenant::new("usage-burst");
    let created = tenant.create_key(json!({"name": "busy"}));
    let (key, id) = (
        created["key"].as_str().unwrap(),
        created["id"].as_str().unwrap(),
    );
    let started = Instant::now();
    let ids: Vec<String> = (0..30)
        .map(|_| {
            let response = get(&tenant.name, &unique_path("burst"), &[("X-Api-Key", key)]);
            assert_eq!(response.status, 200);
            response.header("X-Request-Id").unwrap().to_string()
        })
        .collect();
    let seconds = started.elapsed().as_secs_f64().ceil() as usize;
    let sends = ids
        .iter()
        .filter(|id| !log_line(id)["usageSend"].is_null())
        .count();
    // At most: the bound this test is for. No lower bound: other tests' requests to the same
    // isolate may be the ones that set off the sends; that the counts arrive is checked next.
    assert!(
        sends <= seconds + 1,
        "{sends} sends for 30 requests in {seconds} s"
    );
    wait_for_totals(
        &tenant,
        id,
        "",
        json!({"allowed": 30, "forbidden": 0, "ipDenied": 0, "revoked": 0, "expired": 0}),
    );
}

fn the_usage_report_refuses_each_bad_parameter_naming_it() {
    let tenant = TestTenant::new("usage-bad");
    let id = tenant.create_key(json!({"name": "k"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let now = now_seconds() * 1000;
    let cases = [
        ("granularity=week", "granularity"),
        ("granularity=HOUR", "granularity"),
        ("granularity=", "granularity"),
        ("from=yesterday", "from"),
        ("from=2026-11-01", "from"),
        ("to=2026-11-01T25:00:00Z", "to"),
        ("to=1732492800000", "to"),
        (
            &format!("from={}&to={}", rfc3339(now), rfc3339(now - DAY_MS)),
            "to",
        ),
        (&format!("from={0}&to={0}", rfc3339(now)), "to"),
        (
            &format!("granularity=hour&from={}", rfc3339(now - 32 * DAY_MS)),
            "from",
        ),
        (&format!("from={}", rfc3339(now - 401 * DAY_MS)), "from"),
    ];
    for (query, field) in cases {
        let response = usage_of(&tenant, &id, &format!("?{query}"));
        assert_eq!(
            (response.status, response.code()),
            (400, "validation_error".to_string()),
            "{query}: {}",
            response.text()
        );
        assert_eq!(response.json()["error"]["field"], field, "{query}");
    }
    // The longest ranges allowed are answered.
    for query in [
        format!(
            "granularity=hour&from={}",
            rfc3339(now - 31 * DAY_MS + 60_000)
        ),
        format!(
            "granularity=day&from={}",
            rfc3339(now - 400 * DAY_MS + 60_000)
        ),
    ] {
        let response = usage_of(&tenant, &id, &format!("?{query}"));
        assert_eq!(response.status, 200, "{query}: {}", response.text());
        assert_eq!(response.json()["buckets"], json!([]));
    }
}

fn another_tenants_or_an_unknown_key_has_no_usage_report() {
    let owner = TestTenant::new("usage-owner");
    let other = TestTenant::new("usage-stranger");
    let id = owner.create_key(json!({"name": "mine"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (tenant, id) in [
        (&other, id.as_str()),
        (&owner, "00000000-0000-4000-8000-000000000000"),
        (&owner, "not-a-uuid"),
    ] {
        let response = usage_of(tenant, id, "");
        assert_eq!(
            (response.status, response.code()),
            (404, "not_found".to_string()),
            "{} {id}",
            tenant.name
        );
    }
    // Managing keys takes an admin: a read key may not read usage, not even its own.
    let key = owner.create_key(json!({"name": "reader"}))["key"]
        .as_str()
        .unwrap()
        .to_string();
    let as_key = get(
        &owner.name,
        &format!("/api/v1/api-keys/{id}/usage"),
        &[("X-Api-Key", &key)],
    );
    assert_eq!(as_key.status, 403);
    let wrong_method = request(
        "DELETE",
        &owner.name,
        &format!("/api/v1/api-keys/{id}/usage"),
        &owner.admin_headers(),
        None,
    );
    assert_eq!(
        (wrong_method.status, wrong_method.header("Allow")),
        (405, Some("GET"))
    );
}

/// The JSON lines of an instance's log whose `event` is `event`. wrangler colours the lines the
/// Worker logs as errors, so the JSON is what lies between the first `{` and the last `}`.
fn events(instance: &Instance, event: &str) -> Vec<Value> {
    fs::read_to_string(&instance.log_path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| Some(&l[l.find('{')?..=l.rfind('}')?]))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == event)
        .collect()
}

fn a_request_is_unaffected_when_its_usage_cannot_be_sent() {
    let no_queue = instance("no-queue");
    let tenant = "usage-no-queue";
    let admin = format!("Bearer {}", session_token(tenant, "admin"));
    let created = send(
        no_queue.port,
        "POST",
        tenant,
        "/api/v1/api-keys",
        &[
            ("Authorization", &admin),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"name": "uncounted"}"#),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let key = created.json()["key"].as_str().unwrap().to_string();
    let before = events(no_queue, "usage_not_sent").len();
    let path = unique_path("no-queue");
    let response = send(
        no_queue.port,
        "GET",
        tenant,
        &path,
        &[("X-Api-Key", &key)],
        None,
    );
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(worker().origin.received(&path).len(), 1);
    let line = log_line_in(&no_queue.log_path, response.header("X-Request-Id").unwrap());
    assert_eq!(line["usage"], "allowed", "{line}");
    // The isolate's send comes a second later, finds no binding, and says so.
    let deadline = Instant::now() + Duration::from_secs(10);
    let failure = loop {
        if let Some(failure) = events(no_queue, "usage_not_sent").into_iter().nth(before) {
            break failure;
        }
        assert!(Instant::now() < deadline, "no usage_not_sent line");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        failure["detail"].as_str().unwrap().contains("USAGE_QUEUE"),
        "{failure}"
    );
    assert!(failure["requests"].as_u64().unwrap() >= 1, "{failure}");
    // Counts, a reason, an event name: nothing else, and so no key material.
    let mut fields: Vec<&str> = failure
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["detail", "event", "messages", "requests"]);
}

/// The tenant and key whose old usage rows are seeded into the "no-queue" instance's D1.
const CLEAN_UP_TENANT: &str = "usage-clean-up";
const CLEAN_UP_KEY: &str = "5d4c1c3e-8a4e-4c55-9d64-6f3c2a0b7e11";

/// Before the "no-queue" instance starts (harness::INSTANCES): a key with hourly rows 91 days,
/// 89 days and an hour old, and two counted-message ids, 5 days and an hour old.
pub fn seed_old_usage(no_queue: &Instance) {
    let now = now_seconds() * 1000;
    let hour = now - now % HOUR_MS;
    let sql = format!(
        "INSERT INTO api_keys (id, tenant, key_prefix, name, scopes, created_at) \
         VALUES ('{CLEAN_UP_KEY}', '{CLEAN_UP_TENANT}', 'rk_live_0000', 'old', 'read', {created}); \
         INSERT INTO api_key_usage (tenant, key_id, hour_start, allowed) VALUES \
         ('{CLEAN_UP_TENANT}', '{CLEAN_UP_KEY}', {old}, 1), \
         ('{CLEAN_UP_TENANT}', '{CLEAN_UP_KEY}', {kept}, 2), \
         ('{CLEAN_UP_TENANT}', '{CLEAN_UP_KEY}', {recent}, 4); \
         INSERT INTO usage_messages (id, received_at) VALUES \
         ('seeded-old', {old_message}), ('seeded-recent', {recent_message});",
        created = now - 100 * DAY_MS,
        old = hour - 91 * DAY_MS,
        kept = hour - 89 * DAY_MS,
        recent = hour - HOUR_MS,
        old_message = now - 5 * DAY_MS,
        recent_message = now - HOUR_MS,
    );
    no_queue.wrangler(
        &["d1", "execute", "DB", "--local", "--command", &sql],
        "seed old usage",
    );
}

fn the_daily_clean_up_removes_usage_older_than_90_days() {
    let no_queue = instance("no-queue");
    let admin = format!("Bearer {}", session_token(CLEAN_UP_TENANT, "admin"));
    let now = now_seconds() * 1000;
    let report = || {
        let response = send(
            no_queue.port,
            "GET",
            CLEAN_UP_TENANT,
            &format!(
                "/api/v1/api-keys/{CLEAN_UP_KEY}/usage?from={}",
                rfc3339(now - 100 * DAY_MS)
            ),
            &[("Authorization", &admin)],
            None,
        );
        assert_eq!(response.status, 200, "{}", response.text());
        let allowed: Vec<u64> = response.json()["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["allowed"].as_u64().unwrap())
            .collect();
        allowed
    };
    assert_eq!(report(), [1, 2, 4]);
    // What the daily Cron Trigger runs, at the time it would run (wrangler dev's trigger, which
    // answers only on the instance's own host).
    let trigger = || {
        let response = send(
            no_queue.port,
            "GET",
            &format!("127.0.0.1:{}", no_queue.port),
            &format!("/cdn-cgi/handler/scheduled?cron=17+3+*+*+*&time={now}"),
            &[],
            None,
        );
        assert_eq!(response.status, 200, "{}", response.text());
    };
    let before = events(no_queue, "usage_pruned").len();
    trigger();
    assert_eq!(report(), [2, 4]);
    trigger();
    let pruned = events(no_queue, "usage_pruned");
    assert_eq!(pruned.len(), before + 2, "{pruned:?}");
    assert_eq!(
        (&pruned[before]["hourRows"], &pruned[before]["messageIds"]),
        (&json!(1), &json!(1)),
        "the 91-day-old row and the 5-day-old message id"
    );
    assert_eq!(
        (
            &pruned[before + 1]["hourRows"],
            &pruned[before + 1]["messageIds"]
        ),
        (&json!(0), &json!(0)),
        "a second run finds nothing more"
    );
}

/// tests/browser/usage-chart.mjs: the sparkline and the usage dialog show real counts, and each
/// bar shows exactly the counts a fixed report gives it. Saves `.e2e/usage-chart.png` (the
/// README's docs/usage-chart.png is a copy).
fn the_settings_page_charts_a_keys_usage_in_chromium() {
    let tenant = TestTenant::new("usage-chart");
    let screenshot = project_root().join(".e2e/usage-chart.png");
    let output = Command::new(project_root().join("node_modules/.bin/node"))
        .arg(project_root().join("tests/browser/usage-chart.mjs"))
        .args([worker().port.to_string(), tenant.name.clone()])
        .arg(&screenshot)
        .output()
        .expect("run the browser test with node");
    assert!(
        output.status.success(),
        "browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(screenshot.exists());
}
