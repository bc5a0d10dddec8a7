//! Processes: the one build of the Worker, `wrangler` commands, and each instance's
//! `wrangler dev` in a process group of its own, on a free port, until it answers.

use super::client::send;
use super::credentials::JWT_SECRET;
use super::origin::SECRET_SCANNING_KEYS_PATH;
use super::{Config, InstanceSpec};
use std::collections::BTreeSet;
use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(90);

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// PATH with the project's node_modules/.bin first: wrangler needs the Node 22 installed there.
fn tool_path() -> String {
    let bin = project_root().join("node_modules/.bin");
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A free port below Linux's ephemeral range (32768-60999), never one this run has handed out
/// before. The kernel hands out ports from that range to every bind(0), and each workerd makes
/// several, so a port picked there by bind(0) can be taken again before wrangler binds it
/// ("Address already in use"). And a port is only free until its wrangler binds it: two
/// instances given the same one (it happened: `contract` and `no-kv` on one port, the second's
/// wrangler exiting while the first answered its readiness probe) would share one Worker.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let mut random = [0u8; 2];
        getrandom::fill(&mut random).unwrap();
        let port = 20_000 + u16::from_be_bytes(random) % 12_000;
        let free = TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free && HANDED_OUT.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// Runs a command to its end and returns its standard output; panics with both outputs if it
/// fails.
pub fn run(command: &mut Command, what: &str) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The project's wrangler, run from the project root, never waiting for input (so that
/// `d1 migrations apply` takes its non-interactive "yes" instead of prompting).
pub fn wrangler() -> Command {
    let mut command = Command::new(project_root().join("node_modules/.bin/wrangler"));
    command
        .current_dir(project_root())
        .env("PATH", tool_path())
        .env("WRANGLER_SEND_METRICS", "false")
        .env("EDGE_KEYS_PREBUILT", "1")
        .stdin(Stdio::null());
    command
}

/// Builds the release Worker once for the whole run (wrangler's own [build] is skipped), with
/// the test-only features `panic-on-demand` (hardening.rs) and `handler-on-demand` (edge.rs):
/// the one difference from a deployment's build.
pub fn build_worker() {
    eprintln!("e2e: building the Worker once for this run");
    run(
        Command::new("bash")
            .arg("scripts/build.sh")
            .current_dir(project_root())
            .env("PATH", tool_path())
            .env("EDGE_KEYS_FEATURES", "panic-on-demand,handler-on-demand"),
        "build",
    );
}

/// The `compatibility_date = "..."` line of a wrangler config.
fn compatibility_date(config: &Path) -> String {
    let text =
        fs::read_to_string(config).unwrap_or_else(|e| panic!("read {}: {e}", config.display()));
    text.lines()
        .find(|l| l.starts_with("compatibility_date"))
        .unwrap_or_else(|| panic!("{} has no compatibility_date", config.display()))
        .to_string()
}

/// One `wrangler dev` of the built Worker, with its own port, state directory and log.
pub struct Instance {
    pub name: &'static str,
    pub port: u16,
    pub persist: PathBuf,
    pub log_path: PathBuf,
    /// Whether its D1 has every migration (and so the whole schema).
    pub migrated: bool,
    /// A checked-in wrangler config, for instances that differ from wrangler.toml.
    config: Option<PathBuf>,
    /// Whether the front Worker runs before wrangler.toml's ([`Config::Front`]).
    front: bool,
    /// Extra `--var NAME:VALUE` arguments.
    vars: Vec<String>,
}

impl Instance {
    /// Makes the row's state directory and, for a migrated D1, applies migrations/ to it.
    pub fn prepare(run_dir: &Path, spec: &InstanceSpec) -> Instance {
        let config = match spec.config {
            Config::Root | Config::Front => None,
            Config::File(relative) => {
                let path = project_root().join(relative);
                // The checked-in configs must run the Worker as wrangler.toml does.
                assert_eq!(
                    compatibility_date(&path),
                    compatibility_date(&project_root().join("wrangler.toml")),
                    "{relative} must have wrangler.toml's compatibility_date"
                );
                Some(path)
            }
        };
        let mut instance = Instance::unstarted(run_dir, spec.name);
        instance.config = config;
        instance.front = matches!(spec.config, Config::Front);
        if instance.front {
            // The two Workers of production run with one compatibility date.
            assert_eq!(
                compatibility_date(&project_root().join("wrangler.front.toml")),
                compatibility_date(&project_root().join("wrangler.toml")),
                "wrangler.front.toml must have wrangler.toml's compatibility_date"
            );
        }
        instance.vars = spec.vars.iter().map(|v| v.to_string()).collect();
        if spec.migrated {
            instance.apply_migrations();
            instance.migrated = true;
        }
        instance
    }

    /// A fresh state directory with wrangler.toml's bindings and no process: for wrangler
    /// commands on a local D1 or KV of its own.
    pub fn unstarted(dir: &Path, name: &'static str) -> Instance {
        let persist = dir.join(format!("state-{name}"));
        fs::create_dir_all(&persist).unwrap();
        Instance {
            name,
            port: free_port(),
            log_path: dir.join(format!("worker-{name}.log")),
            persist,
            migrated: false,
            config: None,
            front: false,
            vars: Vec::new(),
        }
    }

    /// `wrangler d1 migrations apply DB --local`: every file of migrations/ not yet applied.
    pub fn apply_migrations(&self) {
        self.wrangler(
            &["d1", "migrations", "apply", "DB", "--local"],
            "migrations",
        );
    }

    /// Runs a wrangler command against this instance's config and state; returns its stdout.
    pub fn wrangler(&self, args: &[&str], what: &str) -> String {
        let mut command = wrangler();
        command.args(args).arg("--persist-to").arg(&self.persist);
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        run(&mut command, &format!("{} {what}", self.name))
    }

    /// Starts `wrangler dev` in a process group of its own (its workerd included).
    pub fn spawn(&self, origin_url: &str) -> Child {
        let log = fs::File::create(&self.log_path).unwrap();
        let mut vars = vec![
            format!("ORIGIN_URL:{origin_url}"),
            format!("JWT_SECRET:{JWT_SECRET}"),
            format!("SECRET_SCANNING_KEYS_URL:{origin_url}{SECRET_SCANNING_KEYS_PATH}"),
        ];
        // Every instance signs identity assertions unless its row says otherwise.
        if !self
            .vars
            .iter()
            .any(|v| v.starts_with("IDENTITY_SIGNING_KEY:"))
        {
            vars.push(concat!("IDENTITY_SIGNING_KEY:", crate::identity_key!()).to_string());
        }
        vars.extend(self.vars.iter().cloned());
        let mut command = wrangler();
        command
            .args([
                "dev",
                "--local",
                "--ip",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
            ])
            .args(["--inspector-port", &free_port().to_string(), "--persist-to"])
            .arg(&self.persist);
        for var in &vars {
            command.args(["--var", var]);
        }
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        if self.front {
            command
                .arg("--config")
                .arg(project_root().join("wrangler.front.toml"))
                .arg("--config")
                .arg(self.whole_worker_config(&vars));
        }
        command
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start wrangler dev")
    }

    /// wrangler.toml for the whole Worker behind the front one, in a directory of this
    /// instance's, with `vars` in a .dev.vars beside it: wrangler gives `--var` to the first
    /// config's Worker only, and reads the others' .dev.vars from their config's directory.
    fn whole_worker_config(&self, vars: &[String]) -> PathBuf {
        let dir = self.persist.with_file_name(format!("whole-{}", self.name));
        fs::create_dir_all(&dir).unwrap();
        let root = project_root();
        let mut config = fs::read_to_string(root.join("wrangler.toml")).unwrap();
        // Paths in a config are the config's directory's: the copy names the project's.
        for (relative, path) in [
            (
                "main = \"build/index.js\"",
                "main = \"{root}/build/index.js\"",
            ),
            (
                "command = \"bash scripts/build.sh\"",
                "command = \"bash {root}/scripts/build.sh\"",
            ),
            ("directory = \"public\"", "directory = \"{root}/public\""),
        ] {
            assert!(
                config.contains(relative),
                "wrangler.toml has no `{relative}`"
            );
            config = config.replace(
                relative,
                &path.replace("{root}", &root.display().to_string()),
            );
        }
        fs::write(dir.join("wrangler.toml"), config).unwrap();
        let dev_vars: String = vars
            .iter()
            .map(|var| {
                let (name, value) = var.split_once(':').unwrap();
                assert!(
                    !value.contains('\''),
                    "{name}: a .dev.vars value in '' has no '"
                );
                format!("{name}='{value}'\n")
            })
            .collect();
        fs::write(dir.join(".dev.vars"), dev_vars).unwrap();
        dir.join("wrangler.toml")
    }

    /// Waits until the Worker answers; false if wrangler exited first.
    pub fn wait_ready(&self, child: &mut Child) -> bool {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            // Probe the port first: the client panics on a refused connection.
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && send(self.port, "GET", "acme", "/healthz", &[], None).status == 200
            {
                return true;
            }
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "{} was not ready in {READY_TIMEOUT:?}; see {}",
                self.name,
                self.log_path.display()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Owns the wrangler process groups; dropping it kills every group.
pub struct Running {
    children: Vec<Child>,
    pub run_dir: PathBuf,
}

impl Running {
    /// Starts every instance at once, waits for each, and restarts on another port one whose
    /// wrangler exited during start-up (a port taken after all). `origin_urls[i]` is instance
    /// i's ORIGIN_URL.
    pub fn start(run_dir: PathBuf, instances: &mut [Instance], origin_urls: &[String]) -> Running {
        // Running owns the children from here, so a panic below still kills every group.
        let children = instances
            .iter()
            .zip(origin_urls)
            .map(|(instance, origin)| instance.spawn(origin))
            .collect();
        let mut running = Running { children, run_dir };
        for (i, instance) in instances.iter_mut().enumerate() {
            for attempt in 1.. {
                if instance.wait_ready(&mut running.children[i]) {
                    break;
                }
                assert!(
                    attempt < 3,
                    "{} exited during start-up {attempt} times; see {}",
                    instance.name,
                    instance.log_path.display()
                );
                eprintln!(
                    "e2e: {} exited during start-up; starting it again on another port",
                    instance.name
                );
                kill_group(&mut running.children[i]);
                instance.port = free_port();
                running.children[i] = instance.spawn(&origin_urls[i]);
            }
        }
        running.record_groups();
        running
    }

    /// scripts/test.sh checks, after the run, that nothing of these process groups survived:
    /// one group id a line in .e2e/wrangler.pgid.
    fn record_groups(&self) {
        let groups: Vec<String> = self.children.iter().map(|c| c.id().to_string()).collect();
        fs::write(project_root().join(".e2e/wrangler.pgid"), groups.join("\n")).unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.children {
            kill_group(child);
        }
    }
}

/// Ends a wrangler and everything in its process group (workerd included).
fn kill_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // workerd may outlive its parent for a moment; make sure the whole group is gone.
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let _ = child.wait();
}
