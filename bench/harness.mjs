// Shared by the benchmark and the soak: a local origin, the release Worker (or any module
// Worker) in workerd through Miniflare's API, the D1 migrations, the development identity key,
// and admin session tokens.

import { Miniflare, supportedCompatibilityDate } from "miniflare";
import http from "node:http";
import { dirname } from "node:path";
import { createHash, createHmac } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";

export const root = new URL("..", import.meta.url).pathname;

/// oha, the open-loop load generator: $OHA, else the one scripts/setup.sh installs with cargo.
export const OHA = process.env.OHA ?? (existsSync(`${homedir()}/.cargo/bin/oha`) ? `${homedir()}/.cargo/bin/oha` : "oha");

/// The client address of the fixed-rate phases, and the allow-list of the bench's keys that
/// holds it (bench/wrk/check.lua draws its addresses from the same /48).
export const CLIENT_IP = "2001:db8:be::1";
export const ALLOWED_IPS = ["203.0.113.0/24", "2001:db8:be::/48"];

/// The letters the benchmark's cases (bench/run.mjs) had before they had names. Earlier results
/// and commands quote them, so BENCH_CASES and PROFILE_CASE still accept them.
export const OLD_CASE_LETTERS = {
  a: "gateway-valid-key", b: "gateway-no-key", c: "js-minimal", d: "malformed-key", e: "unknown-key-cached",
  f: "d1-miss", g: "list-page", h: "js-same-work", i: "js-floor",
};

/// The case names of an environment variable's comma-separated list of names or old letters;
/// exits with the list of known names if one is not among them.
export function caseNames(variable, known) {
  const names = process.env[variable].split(",").map((c) => OLD_CASE_LETTERS[c.trim()] ?? c.trim());
  const unknown = names.filter((name) => !known.includes(name));
  if (unknown.length) {
    console.error(`${variable}: no case ${unknown.join(", ")}; the cases are ${known.join(", ")}`);
    process.exit(2);
  }
  return names;
}

/// A loopback origin that answers every request with a small JSON body, or with what
/// `respond(req, url)` returns once the request's body has arrived (the soak's origin checks
/// what the edge forwarded, and answers with its findings).
export async function startOrigin(respond) {
  let url;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(respond ? JSON.stringify(respond(req, url)) : '{"origin":"ok"}');
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${server.address().port}`;
  return { server, url };
}

// miniflare 4's workerd may be older than the project's date; the Worker uses no newer flag.
const projectDate = readFileSync(`${root}wrangler.toml`, "utf8").match(/^compatibility_date = "(.+)"/m)[1];
export const compatibilityDate = projectDate < supportedCompatibilityDate ? projectDate : supportedCompatibilityDate;

/// The development signing key of the identity assertions, as `.dev.vars.example` publishes it:
/// without it, every keyed request would answer 503 identity_not_configured.
export const identitySigningKey = readFileSync(`${root}.dev.vars.example`, "utf8")
  .match(/^IDENTITY_SIGNING_KEY='(.+)'$/m)[1];

/// The release build's two Workers (scripts/build.sh): the front Worker of wrangler.front.toml and
/// the whole Worker of wrangler.toml.
export const releaseScripts = { front: `${root}build/front/index.js`, whole: `${root}build/index.js` };

/// `startWorker`'s options for the release build as production runs it: the front Worker, with
/// the whole Worker behind its service binding, and the usage queue.
export const asInProduction = { scriptPath: releaseScripts.front, front: { behind: releaseScripts.whole }, usageQueue: true };

/// The usage queue of wrangler.toml, produced and consumed by the same Worker.
export const USAGE_QUEUE = "rally-edge-keys-usage";

/// Starts a module Worker in workerd with the project's bindings. `scriptPath` defaults to the
/// release build; `tree` is the checkout whose migrations/ (or, in a tree older than migrations,
/// schema.sql) build its D1; `rateLimit` adds the failed-authentication limiter of wrangler.toml
/// (20 per 60 s), or, as `{ limit }`, the same limiter with another limit (bench/edge.mjs sends
/// thousands of rejected keys from one address, and measures the 401 path, not the 429 one);
/// `inspect` opens V8's inspector on a loopback port (for bench/profile.mjs); `usageQueue` (the
/// release build's default) adds wrangler.toml's usage queue, produced and consumed by the
/// Worker; `onLogLine` gets each line the Worker logs, which are otherwise dropped; `vars` adds
/// vars. `front` makes `scriptPath` the front Worker of wrangler.front.toml, with, as
/// `{ behind }`, the whole Worker of that script behind its service binding (as in production),
/// or, as `{ behind: null }`, alone (its start-up; anything it hands over then fails); the
/// inspector is then the front Worker's. `startMs` in the answer is the time from here to
/// workerd answering, the Workers' modules compiled; `workerName` is the Worker that HTTP
/// reaches (and the inspector inspects).
export async function startWorker({
  originUrl, jwtSecret, scriptPath = releaseScripts.whole, tree = root, rateLimit = true, inspect = false,
  usageQueue = scriptPath === releaseScripts.whole, onLogLine, vars = {}, front,
}) {
  const started = performance.now();
  const module = (path) => ({
    scriptPath: path,
    modules: true,
    // Module names are paths under this root, and workerd refuses a name that climbs out of it
    // with "..": the default root, the working directory, would refuse another tree's build.
    modulesRoot: dirname(path),
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
    compatibilityDate,
  });
  const storage = {
    d1Databases: ["DB"],
    kvNamespaces: ["API_KEY_CACHE"],
    ratelimits: rateLimit
      ? { AUTH_FAILURE_LIMITER: { namespace_id: "1001", simple: { limit: rateLimit.limit ?? 20, period: 60 } } }
      : {},
  };
  const producer = usageQueue ? { queueProducers: { USAGE_QUEUE: USAGE_QUEUE } } : {};
  const whole = (path, inspected) => ({
    name: "rally-edge-keys",
    unsafeInspectorProxy: inspected,
    ...module(path),
    ...storage,
    ...producer,
    ...(usageQueue ? { queueConsumers: { [USAGE_QUEUE]: { maxBatchSize: 100, maxBatchTimeout: 1, maxRetries: 3 } } } : {}),
    bindings: { ROOT_DOMAIN: "rallycrm.io", ORIGIN_URL: originUrl, JWT_SECRET: jwtSecret, IDENTITY_SIGNING_KEY: identitySigningKey, ...vars },
  });
  const workers = front
    ? [{
      name: "rally-edge-keys-front",
      unsafeInspectorProxy: inspect,
      ...module(scriptPath),
      ...storage,
      ...producer,
      ...(front.behind ? { serviceBindings: { EDGE_KEYS: "rally-edge-keys" } } : {}),
      bindings: { ROOT_DOMAIN: "rallycrm.io", ORIGIN_URL: originUrl, IDENTITY_SIGNING_KEY: identitySigningKey, ...vars },
    }, ...(front.behind ? [whole(front.behind, false)] : [])]
    : [whole(scriptPath, inspect)];
  const mf = new Miniflare({
    host: "127.0.0.1",
    port: 0,
    ...(inspect ? { inspectorPort: 0, inspectorHost: "127.0.0.1" } : {}),
    // The Worker's one log line per request would drown the output and cost CPU to print.
    handleRuntimeStdio(stdout, stderr) {
      for (const stream of [stdout, stderr]) {
        if (!onLogLine) {
          stream.resume();
          continue;
        }
        let rest = "";
        stream.on("data", (chunk) => {
          const lines = (rest + chunk).split("\n");
          rest = lines.pop();
          lines.forEach(onLogLine);
        });
      }
    },
    workers,
  });
  const before = workerdChildren();
  const url = new URL(await mf.ready);
  const startMs = performance.now() - started;
  // The workerd process this Miniflare started: its CPU time is the Worker's cost (with the
  // local KV and D1 simulators, which run inside it too).
  const pid = workerdChildren().find((p) => !before.includes(p));
  const db = await mf.getD1Database("DB");
  await applyMigrations(db, tree);
  return { mf, db, kv: await mf.getKVNamespace("API_KEY_CACHE"), port: Number(url.port), pid, startMs, workerName: workers[0].name };
}

/// Applies every file of the tree's migrations/ in name order, as `wrangler d1 migrations apply`
/// does (the database is fresh, so there is nothing to skip); a tree from before migrations
/// existed gets its schema.sql. D1's API takes one statement at a time; comments (which may hold
/// a ';') go first. A migration with a trigger, whose body holds ';', would need a real statement
/// splitter here.
async function applyMigrations(db, tree) {
  const base = tree.replace(/\/$/, "");
  const dir = `${base}/migrations/`;
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".sql")).sort().map((f) => dir + f) : [`${base}/schema.sql`];
  for (const file of files) {
    const sql = readFileSync(file, "utf8").replace(/--.*$/gm, "");
    for (const statement of sql.split(";").map((s) => s.trim()).filter(Boolean)) {
      await db.prepare(statement).run();
    }
  }
}

/// The workerd processes that this Node process started.
function workerdChildren() {
  return readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return stat.includes("(workerd)") && Number(fields[1]) === process.pid;
    } catch {
      return false;
    }
  });
}

/// CPU time (user + system) a process has used so far, in microseconds. The kernel counts in
/// ticks of 10 ms, so a measurement over a few seconds is good to about 1 %.
export function cpuMicros(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/// An HS256 admin session for a tenant, as the CRM would issue it.
export function sessionToken(tenant, secret) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: "bench", tenant, role: "admin", exp: now + 3600 })}`;
  return `Bearer ${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

/// The KV name of a key's entry in a place of the cache (`managed` for a grant, `filled` for what
/// a lookup in D1 found), as the Worker names it (src/cache/kv.rs: the place, then a hash of the key
/// hash): the one place a bench script needs to know it.
export function cacheEntryName(place, keyHash) {
  return `${place}/${createHash("sha256").update(`rally-edge-keys/kv/v2:${keyHash}`).digest("hex")}`;
}

export const managedEntryName = (keyHash) => cacheEntryName("managed", keyHash);

/// Creates a key of `tenant` with `allowedIps` through a Rust Worker's API, on `host`, and makes
/// the grant that its creation wrote in KV fresh all day (a Worker with no D1 behind it cannot
/// renew it, so no Worker of a comparison renews it: a renewal is one D1 read per isolate every
/// few minutes, nothing per request). Returns the key, its hash, its id, the entry's name and the
/// grant as written.
export async function createFreshKey(worker, { host, tenant, jwtSecret, allowedIps, name = "bench" }) {
  const created = await request(worker.port, "POST", host, "/api/v1/api-keys",
    { authorization: sessionToken(tenant, jwtSecret), "content-type": "application/json" },
    JSON.stringify({ name, scopes: "read,write", allowedIps }));
  if (created.status !== 201) throw new Error(`${worker.label ?? "worker"} create: ${created.status}`);
  const { id, key } = JSON.parse(created.body);
  const keyHash = createHash("sha256").update(key).digest("hex");
  const cacheName = managedEntryName(keyHash);
  const written = JSON.parse(await worker.kv.get(cacheName));
  if (written?.grant?.allowedIps !== allowedIps.join(",")) {
    throw new Error(`${worker.label ?? "worker"}: the key's grant in KV is not the one expected`);
  }
  written.grant.freshUntil = Date.now() + 86_400_000;
  await worker.kv.put(cacheName, JSON.stringify(written));
  return { id, key, keyHash, cacheName, written };
}

/// Gives a key that `createFreshKey` made on `from` to another Worker, `to`: its grant in KV,
/// and its row in D1 for the usage consumer, which counts only keys its D1 knows.
export async function shareKey(from, to, { id, cacheName, written }) {
  await to.kv.put(cacheName, JSON.stringify(written));
  const row = await from.db.prepare("SELECT * FROM api_keys WHERE id = ?1").bind(id).first();
  const columns = Object.keys(row);
  await to.db.prepare(`INSERT INTO api_keys (${columns.join(", ")}) VALUES (${columns.map((_, i) => `?${i + 1}`).join(", ")})`)
    .bind(...columns.map((c) => row[c])).run();
}

/// One HTTP request to 127.0.0.1:`port` with an explicit Host (fetch would not send it).
export function request(port, method, host, path, headers = {}, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path, headers: { host, ...headers } }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    req.end(body);
  });
}
