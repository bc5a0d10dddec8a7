//! The end-to-end harness: builds the Worker once and starts the Worker instances of
//! [`INSTANCES`], each a `wrangler dev` with a fresh local D1 (migrated or not) and KV under its
//! own --persist-to directory, on a free port, with ORIGIN_URL pointing at a recording HTTP
//! server on loopback (or at a port where nothing listens). Tests look instances up by name.
//! Every wrangler/workerd process group is killed when the run ends, panics included.
//!
//! - `process`: the build, wrangler commands, instances' processes, ports, readiness, clean-up
//! - `origin`: the recording origin
//! - `client`: HTTP requests and responses
//! - `credentials`: JWTs, test tenants and their keys, the secrets the run handled
//! - `log`: the Worker's log lines, and the check that no secret reached a log

mod client;
mod credentials;
mod log;
mod origin;
mod process;

pub use client::*;
pub use credentials::*;
pub use log::*;
pub use origin::*;
pub use process::*;

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The wrangler config an instance runs with.
pub enum Config {
    /// The project's wrangler.toml, as deployed (it has no DEV_LOGIN).
    Root,
    /// A checked-in config, relative to the project root; its `main` and `migrations_dir` are
    /// relative to the file, as wrangler resolves them.
    File(&'static str),
    /// Production's shape: the front Worker of wrangler.front.toml before wrangler.toml's whole
    /// Worker, behind its service binding, in one `wrangler dev` (the front first: it has the
    /// port). Their D1 and KV are the same.
    Front,
}

/// Where an instance forwards the requests it lets through (its ORIGIN_URL).
pub enum Upstream {
    /// The run's recording origin, [`Worker::origin`].
    Recording,
    /// A loopback port where nothing listens.
    Unreachable,
}

/// One Worker instance of the run.
pub struct InstanceSpec {
    pub name: &'static str,
    pub config: Config,
    /// Whether `wrangler d1 migrations apply` runs on its D1 before it starts.
    pub migrated: bool,
    /// Extra `--var NAME:VALUE`s (ORIGIN_URL and JWT_SECRET are always given).
    pub vars: &'static [&'static str],
    pub upstream: Upstream,
    /// Runs against the instance's state after its D1 is prepared, before wrangler dev starts.
    pub before_start: Option<fn(&Instance)>,
}

/// Every Worker instance the run starts. The first is the main one, behind [`worker`],
/// [`request`] and [`log_line`]; any is found with [`instance`].
pub const INSTANCES: &[InstanceSpec] = &[
    // Most tests: the front Worker before wrangler.toml's Worker, as in production, with a
    // migrated D1, and the development sign-in, set explicitly rather than through a
    // developer's .dev.vars. The other instances run wrangler.toml's Worker alone, as plain
    // `wrangler dev` does.
    InstanceSpec {
        name: "main",
        config: Config::Front,
        migrated: true,
        vars: &["DEV_LOGIN:enabled"],
        upstream: Upstream::Recording,
        before_start: None,
    },
    // faults.rs: a D1 without any schema; one key's grant is written straight into its KV.
    InstanceSpec {
        name: "no-d1-schema",
        config: Config::Root,
        migrated: false,
        vars: &[],
        upstream: Upstream::Recording,
        before_start: Some(crate::faults::seed_cached_key),
    },
    // faults.rs: no KV binding at all, forwarding to an origin that is down.
    InstanceSpec {
        name: "no-kv",
        config: Config::File("tests/e2e/instances/no-kv.toml"),
        migrated: true,
        vars: &[],
        upstream: Upstream::Unreachable,
        before_start: None,
    },
    // contract.rs (schemathesis) and settings.rs: the same Worker, D1 and KV without the
    // failed-authentication limiter, and without the development sign-in.
    InstanceSpec {
        name: "contract",
        config: Config::File("tests/e2e/instances/contract.toml"),
        migrated: true,
        vars: &[],
        upstream: Upstream::Recording,
        before_start: None,
    },
    // usage.rs: no usage queue binding (counting fails, requests do not); its D1 is seeded with
    // old usage rows for the daily clean-up.
    InstanceSpec {
        name: "no-queue",
        config: Config::File("tests/e2e/instances/no-queue.toml"),
        migrated: true,
        vars: &[],
        upstream: Upstream::Recording,
        before_start: Some(crate::usage::seed_old_usage),
    },
    // identity.rs: no signing key at all (the empty value overrides a developer's .dev.vars) ...
    InstanceSpec {
        name: "no-identity",
        config: Config::Root,
        migrated: true,
        vars: &["IDENTITY_SIGNING_KEY:"],
        upstream: Upstream::Recording,
        before_start: None,
    },
    // ... and a rotated one: a new current key, the main instance's as the previous one.
    InstanceSpec {
        name: "rotated-identity",
        config: Config::Root,
        migrated: true,
        vars: &[
            concat!("IDENTITY_SIGNING_KEY:", crate::next_identity_key!()),
            concat!("IDENTITY_SIGNING_KEY_PREVIOUS:", crate::identity_key!()),
        ],
        upstream: Upstream::Recording,
        before_start: None,
    },
    // audit.rs: a D1 with the keys' tables but no audit_events table, and one key in it, so
    // that every change's batch fails at its event and must leave the key as it was.
    InstanceSpec {
        name: "no-audit-table",
        config: Config::Root,
        migrated: false,
        vars: &[],
        upstream: Upstream::Recording,
        before_start: Some(crate::audit::prepare_d1_without_audit_table),
    },
    // hardening.rs: requests that panic on demand. A panic traps the wasm instance and ends
    // every request in flight in it, so these have an instance of their own.
    InstanceSpec {
        name: "panics",
        config: Config::Root,
        migrated: true,
        vars: &[],
        upstream: Upstream::Recording,
        before_start: None,
    },
];

/// The main instance and the recording origin.
pub struct Worker {
    pub port: u16,
    pub log_path: PathBuf,
    pub origin: Origin,
}

struct Started {
    worker: Worker,
    instances: Vec<Instance>,
    run_dir: PathBuf,
}

static STARTED: OnceLock<Started> = OnceLock::new();

fn started() -> &'static Started {
    STARTED
        .get()
        .expect("the harness starts the Worker before any test")
}

pub fn worker() -> &'static Worker {
    &started().worker
}

/// The running instance of that name in [`INSTANCES`].
pub fn instance(name: &str) -> &'static Instance {
    let instances = &started().instances;
    instances
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| {
            let names: Vec<_> = instances.iter().map(|i| i.name).collect();
            panic!("no instance {name:?} in harness::INSTANCES (there are {names:?})")
        })
}

/// Every running instance, in the order of [`INSTANCES`].
pub fn instances() -> &'static [Instance] {
    &started().instances
}

/// This run's directory under .e2e: instances' state and logs, and room for tests' own.
pub fn run_dir() -> &'static PathBuf {
    &started().run_dir
}

/// Builds the Worker, prepares each instance's state and starts them all. Called once, from
/// main; the returned value owns the process groups.
pub fn start() -> Running {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let run_dir = project_root().join(format!(".e2e/run-{}-{stamp}", std::process::id()));
    fs::create_dir_all(&run_dir).unwrap();

    build_worker();
    let origin = Origin::start();
    let unreachable = format!("http://127.0.0.1:{}", free_port());
    let mut instances = Vec::new();
    let mut origin_urls = Vec::new();
    for spec in INSTANCES {
        let instance = Instance::prepare(&run_dir, spec);
        if let Some(before_start) = spec.before_start {
            before_start(&instance);
        }
        instances.push(instance);
        origin_urls.push(match spec.upstream {
            Upstream::Recording => origin.url(),
            Upstream::Unreachable => unreachable.clone(),
        });
    }
    let running = Running::start(run_dir.clone(), &mut instances, &origin_urls);

    let main = &instances[0];
    let state = Started {
        worker: Worker {
            port: main.port,
            log_path: main.log_path.clone(),
            origin,
        },
        instances,
        run_dir,
    };
    assert!(STARTED.set(state).is_ok(), "the harness starts once");
    eprintln!(
        "e2e: {} Worker instances ready, main on 127.0.0.1:{}, origin on 127.0.0.1:{}",
        INSTANCES.len(),
        worker().port,
        worker().origin.port
    );
    running
}
