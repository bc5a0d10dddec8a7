//! The end-to-end harness: builds the Worker once, gives it a fresh local D1 (with migrations/)
//! and KV under its own --persist-to directory, starts `wrangler dev` on a free port with
//! ORIGIN_URL pointing at a recording HTTP server on loopback, and hands tests a client.
//! The whole wrangler/workerd process group is killed when the run ends, panics included.

use rally_edge_keys::domain::base64url;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const JWT_SECRET: &str = "e2e-secret-not-the-dev-one-5f1c";
const READY_TIMEOUT: Duration = Duration::from_secs(90);

pub struct Worker {
    pub port: u16,
    pub log_path: PathBuf,
    pub origin: Origin,
    /// Every key and token the run has seen, for the final check that none reached the log.
    secrets: Mutex<Vec<String>>,
}

static WORKER: OnceLock<Worker> = OnceLock::new();

pub fn worker() -> &'static Worker {
    WORKER
        .get()
        .expect("the harness starts the Worker before any test")
}

/// Owns the wrangler process groups; dropping it kills every group.
pub struct Running {
    children: Vec<Child>,
    pub run_dir: PathBuf,
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

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tool_path() -> String {
    let bin = project_root().join("node_modules/.bin");
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A free port below Linux's ephemeral range (32768-60999). The kernel hands out ports from that
/// range to every bind(0), and each workerd makes several, so a port picked there by bind(0) can
/// be taken again before wrangler binds it ("Address already in use").
pub fn free_port() -> u16 {
    loop {
        let mut random = [0u8; 2];
        getrandom::fill(&mut random).unwrap();
        let port = 20_000 + u16::from_be_bytes(random) % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn wrangler() -> Command {
    let mut command = Command::new(project_root().join("node_modules/.bin/wrangler"));
    command
        .current_dir(project_root())
        .env("PATH", tool_path())
        .env("WRANGLER_SEND_METRICS", "false")
        .env("EDGE_KEYS_PREBUILT", "1")
        .stdin(Stdio::null());
    command
}

/// Builds the Worker, prepares a fresh D1, and starts wrangler dev: the main Worker, plus the
/// fault instances of `faults.rs`. Called once, from main.
pub fn start() -> Running {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let run_dir = project_root().join(format!(".e2e/run-{}-{stamp}", std::process::id()));
    fs::create_dir_all(&run_dir).unwrap();

    eprintln!("e2e: building the Worker once for this run");
    run(
        Command::new("bash")
            .arg("scripts/build.sh")
            .current_dir(project_root())
            .env("PATH", tool_path()),
        "build",
    );

    let origin = Origin::start();
    // The main instance has the development sign-in, explicitly rather than through a
    // developer's .dev.vars; the generated-config instances have no .dev.vars and so do not.
    let main = Instance::prepare(&run_dir, "main", None, true).with_var("DEV_LOGIN:enabled");
    let mut faults = crate::faults::prepare(&run_dir);
    faults.push((crate::contract::prepare(&run_dir), None));
    let origin_url = format!("http://127.0.0.1:{}", origin.port);
    let mut instances = vec![(main, None)];
    instances.extend(faults);
    let origin_of = |o: &Option<String>| o.clone().unwrap_or_else(|| origin_url.clone());
    // All start at once; Running owns them from here, so a panic below still kills every group.
    let children = instances
        .iter()
        .map(|(instance, o)| instance.spawn(&origin_of(o)))
        .collect();
    let mut running = Running { children, run_dir };
    for (i, (instance, o)) in instances.iter_mut().enumerate() {
        // A wrangler that exits during start-up (a port taken after all) gets a new port.
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
            running.children[i] = instance.spawn(&origin_of(o));
        }
    }
    // scripts/test.sh checks, after the run, that nothing of these process groups survived.
    let groups: Vec<String> = running
        .children
        .iter()
        .map(|c| c.id().to_string())
        .collect();
    fs::write(project_root().join(".e2e/wrangler.pgid"), groups.join("\n")).unwrap();

    let (main, _) = instances.remove(0);
    let started = Worker {
        port: main.port,
        log_path: main.log_path.clone(),
        origin,
        secrets: Mutex::new(Vec::new()),
    };
    assert!(WORKER.set(started).is_ok(), "the harness starts once");
    let mut others: Vec<Instance> = instances
        .into_iter()
        .map(|(instance, _)| instance)
        .collect();
    crate::contract::started(others.pop().unwrap());
    crate::faults::started(others);
    eprintln!(
        "e2e: Worker ready on 127.0.0.1:{}, origin on 127.0.0.1:{}",
        worker().port,
        worker().origin.port
    );
    running
}

/// A wrangler config for an instance that differs from wrangler.toml: the same built Worker and
/// D1 database, with or without the KV binding and the rate limiter. Paths are absolute, since
/// the file lives in the run directory.
pub fn generated_config(
    run_dir: &Path,
    name: &str,
    with_kv: bool,
    with_rate_limit: bool,
) -> PathBuf {
    let wrangler_toml = fs::read_to_string(project_root().join("wrangler.toml")).unwrap();
    let compatibility_date = wrangler_toml
        .lines()
        .find(|l| l.starts_with("compatibility_date"))
        .unwrap();
    let mut config = format!(
        "name = \"rally-edge-keys-{name}\"\nmain = \"{}\"\n{compatibility_date}\n\n[vars]\nROOT_DOMAIN = \"rallycrm.io\"\n\n\
         [[d1_databases]]\nbinding = \"DB\"\ndatabase_name = \"rally-edge-keys\"\ndatabase_id = \"00000000-0000-4000-8000-000000000000\"\n\
         migrations_dir = \"{}\"\n",
        project_root().join("build/index.js").display(),
        project_root().join("migrations").display()
    );
    if with_kv {
        config.push_str("\n[[kv_namespaces]]\nbinding = \"API_KEY_CACHE\"\nid = \"00000000000000000000000000000000\"\n");
    }
    if with_rate_limit {
        config.push_str("\n[[ratelimits]]\nname = \"AUTH_FAILURE_LIMITER\"\nnamespace_id = \"1001\"\nsimple = { limit = 20, period = 60 }\n");
    }
    let path = run_dir.join(format!("wrangler-{name}.toml"));
    fs::write(&path, config).unwrap();
    path
}

/// One `wrangler dev` of the built Worker, with its own port, state directory and log.
pub struct Instance {
    pub name: &'static str,
    pub port: u16,
    pub persist: PathBuf,
    pub log_path: PathBuf,
    /// A generated wrangler config, for instances that differ from wrangler.toml.
    config: Option<PathBuf>,
    /// Extra `--var NAME:VALUE` arguments.
    vars: Vec<String>,
}

impl Instance {
    /// Makes the state directory and, with `schema`, applies migrations/ to its D1.
    pub fn prepare(
        run_dir: &Path,
        name: &'static str,
        config: Option<PathBuf>,
        schema: bool,
    ) -> Instance {
        let persist = run_dir.join(format!("state-{name}"));
        fs::create_dir_all(&persist).unwrap();
        let instance = Instance {
            name,
            port: free_port(),
            log_path: run_dir.join(format!("worker-{name}.log")),
            persist,
            config,
            vars: Vec::new(),
        };
        if schema {
            instance.wrangler(
                &["d1", "migrations", "apply", "DB", "--local"],
                "migrations",
            );
        }
        instance
    }

    /// Adds a `--var NAME:VALUE` to this instance's wrangler dev.
    pub fn with_var(mut self, name_and_value: &str) -> Instance {
        self.vars.push(name_and_value.to_string());
        self
    }

    /// Runs a wrangler command against this instance's config and state.
    pub fn wrangler(&self, args: &[&str], what: &str) {
        let mut command = wrangler();
        command.args(args).arg("--persist-to").arg(&self.persist);
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        run(&mut command, &format!("{} {what}", self.name));
    }

    fn spawn(&self, origin_url: &str) -> Child {
        let log = fs::File::create(&self.log_path).unwrap();
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
            .arg(&self.persist)
            .args(["--var", &format!("ORIGIN_URL:{origin_url}")])
            .args(["--var", &format!("JWT_SECRET:{JWT_SECRET}")]);
        for var in &self.vars {
            command.args(["--var", var]);
        }
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        command
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start wrangler dev")
    }

    /// Waits until the Worker answers; false if wrangler exited first.
    fn wait_ready(&self, child: &mut Child) -> bool {
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

// ---------------------------------------------------------------------------------------------
// HTTP client

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
/// one test never counts another test's failures.
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

// ---------------------------------------------------------------------------------------------
// Credentials and tenants

pub fn remember_secret(secret: &str) {
    worker().secrets.lock().unwrap().push(secret.to_string());
}

pub fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Signs claims with HS256, independently of the Worker's own code.
pub fn sign_jwt(header: &Value, claims: &Value, secret: &str) -> String {
    use hmac::{Hmac, Mac};
    let signing_input = format!(
        "{}.{}",
        base64url::encode(header.to_string().as_bytes()),
        base64url::encode(claims.to_string().as_bytes())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    let token = format!(
        "{signing_input}.{}",
        base64url::encode(&mac.finalize().into_bytes())
    );
    remember_secret(&token);
    token
}

pub fn session_token(tenant: &str, role: &str) -> String {
    let claims = json!({"sub": format!("user-{role}"), "tenant": tenant, "role": role, "email": format!("{role}@{tenant}.test"), "exp": now_seconds() + 3600});
    sign_jwt(&json!({"alg": "HS256", "typ": "JWT"}), &claims, JWT_SECRET)
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A tenant of its own for each test, so that tests run in parallel without seeing each other.
pub struct TestTenant {
    pub name: String,
    pub admin: String,
}

impl TestTenant {
    pub fn new(label: &str) -> TestTenant {
        let mut random = [0u8; 4];
        getrandom::fill(&mut random).unwrap();
        let name = format!("{label}-{}", hex::encode(random));
        let admin = format!("Bearer {}", session_token(&name, "admin"));
        TestTenant { name, admin }
    }

    pub fn admin_headers(&self) -> [(&str, &str); 1] {
        [("Authorization", self.admin.as_str())]
    }

    pub fn create_key(&self, body: Value) -> Value {
        let response = send_json(
            "POST",
            &self.name,
            "/api/v1/api-keys",
            &self.admin_headers(),
            &body,
        );
        assert_eq!(response.status, 201, "create: {}", response.text());
        response.json()
    }

    /// Revokes a key as the admin; revocation answers 204.
    pub fn revoke(&self, id: &str) {
        let response = request(
            "DELETE",
            &self.name,
            &format!("/api/v1/api-keys/{id}"),
            &self.admin_headers(),
            None,
        );
        assert_eq!(response.status, 204, "revoke: {}", response.text());
    }

    /// Every key of the tenant, as the admin sees the list.
    pub fn list(&self) -> Vec<Value> {
        let response = get(
            &self.name,
            "/api/v1/api-keys?limit=1000",
            &self.admin_headers(),
        );
        assert_eq!(response.status, 200, "list: {}", response.text());
        response.json().as_array().unwrap().clone()
    }

    pub fn key(&self, id: &str) -> Value {
        let response = get(
            &self.name,
            &format!("/api/v1/api-keys/{id}"),
            &self.admin_headers(),
        );
        assert_eq!(response.status, 200, "get: {}", response.text());
        response.json()
    }
}

// ---------------------------------------------------------------------------------------------
// The Worker's log

/// The structured log line of one request, found by its X-Request-Id. wrangler writes logs a
/// moment after the response, so this waits for it.
pub fn log_line(request_id: &str) -> Value {
    log_line_in(&worker().log_path, request_id)
}

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

/// Every secret the run handled, and each key's SHA-256, checked against the whole log.
pub fn secrets_found_in_logs(run_dir: &Path) -> Vec<String> {
    let mut log = String::new();
    for entry in fs::read_dir(run_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            log.push_str(&fs::read_to_string(path).unwrap());
        }
    }
    let secrets = worker().secrets.lock().unwrap().clone();
    let mut leaked = Vec::new();
    for secret in secrets {
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

// ---------------------------------------------------------------------------------------------
// The recording origin

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A small real HTTP server on loopback standing in for the CRM origin. It answers 200 and
/// records every request it receives.
pub struct Origin {
    pub port: u16,
    received: Arc<Mutex<Vec<Recorded>>>,
}

impl Origin {
    fn start() -> Origin {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("origin listens");
        let port = server.server_addr().to_ip().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
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
                };
                sink.lock().unwrap().push(recorded);
                let header =
                    tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap();
                let _ = request.respond(
                    tiny_http::Response::from_string(r#"{"origin":"ok"}"#).with_header(header),
                );
            }
        });
        Origin { port, received }
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
