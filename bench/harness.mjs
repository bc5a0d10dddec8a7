// Shared by the benchmark and the soak: a local origin, the release Worker (or any module
// Worker) in workerd through Miniflare's API, the schema, and admin session tokens.

import { Miniflare, supportedCompatibilityDate } from "miniflare";
import http from "node:http";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";

export const root = new URL("..", import.meta.url).pathname;

/// A loopback origin that answers every request with a small JSON body.
export async function startOrigin() {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"origin":"ok"}');
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}` };
}

// miniflare 4's workerd may be older than the project's date; the Worker uses no newer flag.
const projectDate = readFileSync(`${root}wrangler.toml`, "utf8").match(/^compatibility_date = "(.+)"/m)[1];
export const compatibilityDate = projectDate < supportedCompatibilityDate ? projectDate : supportedCompatibilityDate;

/// Starts a module Worker in workerd with the project's bindings. `scriptPath` defaults to the
/// release build; `rateLimit` adds the failed-authentication limiter of wrangler.toml.
export async function startWorker({ originUrl, jwtSecret, scriptPath = `${root}build/index.js`, rateLimit = true }) {
  const mf = new Miniflare({
    host: "127.0.0.1",
    port: 0,
    // The Worker's one log line per request would drown the output and cost CPU to print.
    handleRuntimeStdio(stdout, stderr) {
      stdout.resume();
      stderr.resume();
    },
    workers: [{
      name: "rally-edge-keys",
      scriptPath,
      modules: true,
      modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
      compatibilityDate,
      d1Databases: ["DB"],
      kvNamespaces: ["API_KEY_CACHE"],
      ratelimits: rateLimit ? { AUTH_FAILURE_LIMITER: { namespace_id: "1001", simple: { limit: 20, period: 60 } } } : {},
      bindings: { ROOT_DOMAIN: "rallycrm.io", ORIGIN_URL: originUrl, JWT_SECRET: jwtSecret },
    }],
  });
  const url = new URL(await mf.ready);
  const db = await mf.getD1Database("DB");
  // D1's API takes one statement at a time; comments (which may hold a ';') go first.
  const schema = readFileSync(`${root}schema.sql`, "utf8").replace(/--.*$/gm, "");
  for (const statement of schema.split(";").map((s) => s.trim()).filter(Boolean)) {
    await db.prepare(statement).run();
  }
  return { mf, db, kv: await mf.getKVNamespace("API_KEY_CACHE"), port: Number(url.port) };
}

/// An HS256 admin session for a tenant, as the CRM would issue it.
export function sessionToken(tenant, secret) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: "bench", tenant, role: "admin", exp: now + 3600 })}`;
  return `Bearer ${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
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
