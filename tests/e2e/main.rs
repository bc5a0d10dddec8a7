//! End-to-end tests against the real Worker under `wrangler dev` (workerd), with a real local
//! D1 and KV. One Worker serves the whole run; each test works in a tenant of its own.
//! A custom main (libtest-mimic) owns the Worker's process group, so that it is killed when the
//! run ends, and runs the log check after every other test.

#![allow(clippy::disallowed_methods)] // the harness waits on the wall clock; the Worker never does

mod harness;

mod allowlist;
mod audit;
mod auth;
mod bad_input;
mod contract;
mod edge;
mod faults;
mod hardening;
mod identity;
mod isolation;
mod leaks;
mod limits;
mod management;
mod migrations;
mod settings;
mod usage;

use libtest_mimic::{Arguments, Failed, Trial};

pub type TestResult = Result<(), Failed>;

fn main() {
    let args = Arguments::from_args();
    let running = harness::start();
    let mut trials = Vec::new();
    trials.extend(management::tests());
    trials.extend(bad_input::tests());
    trials.extend(auth::tests());
    trials.extend(isolation::tests());
    trials.extend(edge::tests());
    trials.extend(allowlist::tests());
    trials.extend(faults::tests());
    trials.extend(hardening::tests());
    trials.extend(identity::tests());
    trials.extend(leaks::tests());
    trials.extend(limits::tests());
    trials.extend(contract::tests());
    trials.extend(settings::tests());
    trials.extend(migrations::tests());
    trials.extend(audit::tests());
    trials.extend(usage::tests());
    let conclusion = libtest_mimic::run(&args, trials);

    // Last, when every other test has sent its traffic: no key, hash or token in any log.
    let logs_dir = running.run_dir.clone();
    let log_check = Trial::test(
        "logs::no_key_hash_or_token_reaches_the_worker_logs",
        move || {
            std::thread::sleep(std::time::Duration::from_secs(1));
            let leaked = harness::secrets_found_in_logs(&logs_dir);
            if leaked.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} secrets found in the logs under {}",
                    leaked.len(),
                    logs_dir.display()
                )
                .into())
            }
        },
    );
    // Last too: no key, hash or token in any audit event any instance stored.
    let audit_check = Trial::test(
        "audit::no_key_hash_or_token_is_in_any_stored_audit_event",
        || {
            let (events, leaked) = harness::secrets_found_in_audit_events();
            eprintln!("audit: {events} stored events checked");
            if leaked.is_empty() {
                Ok(())
            } else {
                Err(format!("{} secrets found in {events} audit events", leaked.len()).into())
            }
        },
    );
    // Before the log check, which then also looks for every assertion the origin received.
    let assertions = Trial::test(
        "identity::every_keyed_request_the_origin_received_carried_a_verified_assertion",
        || identity::every_keyed_request_carried_a_verified_assertion().map_err(Into::into),
    );
    let assertions_conclusion = libtest_mimic::run(&args, vec![assertions]);
    let final_conclusion = libtest_mimic::run(&args, vec![log_check, audit_check]);
    let failed = conclusion.has_failed()
        || assertions_conclusion.has_failed()
        || final_conclusion.has_failed();
    let run_dir = running.run_dir.clone();
    drop(running);
    if failed {
        eprintln!(
            "e2e: the Worker's log is kept at {}",
            harness::worker().log_path.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    std::process::exit(if failed { 101 } else { 0 });
}

/// `trials!("module": a, b)` makes a Trial of each test function; a panic fails the trial.
#[macro_export]
macro_rules! trials {
    ($module:literal: $($name:ident),* $(,)?) => {
        vec![$(libtest_mimic::Trial::test(concat!($module, "::", stringify!($name)), || { $name(); Ok(()) })),*]
    };
}
