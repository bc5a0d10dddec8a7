// Load and soak: the release Worker in workerd (Miniflare's API, no wrangler proxy), real HTTP on
// 127.0.0.1, SOAK_CONNECTIONS concurrent clients for SOAK_SECONDS, mixing valid, unknown,
// malformed and foreign keys with keys revoked and rotated mid-run, while an admin loop creates,
// uses and revokes keys. A checker judges every single response:
//   - a key whose revocation (or rotation) had not started when its response arrived must pass;
//   - a key whose revocation (or rotation) had completed before its request was sent must fail;
//   - only requests that overlap the change may go either way;
//   - unknown, malformed and other tenants' keys always get 401; nothing ever gets a 5xx;
//   - every request the edge lets through reached the origin with an X-Rally-Identity that the
//     origin verifies, as a real one would, against the Worker's JWK Set, and whose claims name
//     the key, its tenant and scopes, the method, the path and the request id the client got
//     back; with X-Rally-Tenant, X-Forwarded-Host and X-Forwarded-Proto set by the edge, and
//     none of the edge's headers that some clients forge (in any spelling) passed on;
//   - a read-only key is refused (403) when a method-override header asks for a write;
//   - one client address fails on purpose on one tenant until the limiter blocks it (429); its
//     valid keys, which the cache grants, on that tenant and another, must still pass.
// The Workers run as in production: the front Worker (build/front/) answers, with the whole Worker
// behind its service binding for what it hands over (management, misses); SOAK_SHAPE=whole runs
// the whole Worker alone instead.
// Exit status 1 on any wrong decision. Usage: make soak  (or node bench/soak.mjs after a build).

import http from "node:http";
import { createPublicKey, randomBytes, verify } from "node:crypto";
import { asInProduction, compatibilityDate, cpuMicros, request, sessionToken as signSession, startOrigin, startWorker } from "./harness.mjs";

const SECONDS = Number(process.env.SOAK_SECONDS ?? 60);
const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? 50);
const MAX_REQUESTS = 2_000_000; // a hard bound besides the time
const TENANTS = ["soak-a", "soak-b", "soak-c", "soak-d"];
const JWT_SECRET = randomBytes(24).toString("hex");
const SHAPE = process.env.SOAK_SHAPE ?? "front";
if (!["front", "whole"].includes(SHAPE)) {
  console.error(`SOAK_SHAPE: front or whole, not ${SHAPE}`);
  process.exit(2);
}

/// The one client address that fails on purpose (see the header).
const BLOCKED_IP = "2001:db8:b10c::1";
const BLOCKED_TENANT = TENANTS[0];
/// How long a grant cached by a validation stays fresh (src/domain/cache_entry.rs).
const GRANT_FRESH_MS = 300_000;
/// Edge headers a client forges, in the spellings origin stacks read alike.
const FORGED = { "X_Rally_Tenant": "forged", "x-rally-api-key-id": "forged", "X-Rally-Identity": "forged.by.client", "X_Forwarded_Host": "forged.example" };
const EDGE_SET = ["x-rally-tenant", "x-rally-api-key-id", "x-rally-scopes", "x-rally-identity", "x-forwarded-host", "x-forwarded-proto"];

// The origin verifies what the edge forwarded and answers with its findings, which the edge passes
// back to the client unchanged: the checker reads them there.
let publicKeys; // kid -> KeyObject, from the Worker's JWK Set
const origin = await startOrigin((req, originUrl) => {
  const h = req.headers;
  const problems = [];
  for (const name of Object.keys(h)) {
    const normal = name.replaceAll("_", "-");
    const edgeOwned = normal === "x-api-key" || normal.startsWith("x-rally-") || normal === "x-forwarded-host" || normal === "x-forwarded-proto";
    if (edgeOwned && !EDGE_SET.includes(name)) problems.push(`client header ${name} reached the origin`);
    if (String(h[name]).startsWith("forged")) problems.push(`forged ${name} reached the origin`);
  }
  let identity = null;
  if (h["x-rally-identity"]) {
    const [head, body, signature = ""] = h["x-rally-identity"].split(".");
    const decode = (part) => {
      try {
        return JSON.parse(Buffer.from(part ?? "", "base64url").toString());
      } catch {
        problems.push("assertion does not parse");
        return {};
      }
    };
    const header = decode(head);
    const claims = decode(body);
    const key = publicKeys?.get(header.kid);
    if (header.alg !== "EdDSA" || header.typ !== "JWT") problems.push(`assertion header ${JSON.stringify(header)}`);
    if (!key || !verify(null, Buffer.from(`${head}.${body}`), key, Buffer.from(signature, "base64url"))) problems.push("assertion signature does not verify");
    const now = Date.now() / 1000;
    const expected = {
      iss: "rally-edge", aud: originUrl, sub: `apikey:${h["x-rally-api-key-id"]}`, tenant: h["x-rally-tenant"], scopes: h["x-rally-scopes"],
      htm: req.method, htu: req.url.split("?")[0],
    };
    for (const [claim, value] of Object.entries(expected)) if (claims[claim] !== value) problems.push(`claim ${claim} ${claims[claim]}, not ${value}`);
    if (!(claims.exp > claims.iat && claims.exp - claims.iat <= 60 && Math.abs(claims.iat - now) < 30)) problems.push(`iat ${claims.iat}, exp ${claims.exp}`);
    identity = { sub: claims.sub, tenant: claims.tenant, jti: claims.jti };
  }
  return { identity, tenant: h["x-rally-tenant"], forwardedHost: h["x-forwarded-host"], forwardedProto: h["x-forwarded-proto"], problems };
});
const { mf, port, pid } = await startWorker({
  originUrl: origin.url, jwtSecret: JWT_SECRET, ...(SHAPE === "front" ? asInProduction : {}),
});
const jwks = await request(port, "GET", `${TENANTS[0]}.localhost`, "/.well-known/jwks.json");
publicKeys = new Map((JSON.parse(jwks.body).keys ?? []).map((jwk) => [jwk.kid, createPublicKey({ key: jwk, format: "jwk" })]));

// ---- HTTP --------------------------------------------------------------------------------------
const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS + 4 });

function send(method, tenant, path, headers = {}, body) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.request({
      host: "127.0.0.1", port, method, path, agent,
      headers: {
        host: `${tenant}.localhost:${port}`,
        // A random documentation address per request, unless the caller names one: only the
        // blocked client's classes may meet the failed-authentication limiter.
        "cf-connecting-ip": `2001:db8:50a6::${randomBytes(2).toString("hex")}:${randomBytes(2).toString("hex")}`,
        ...(body ? { "content-type": "application/json" } : {}),
        ...headers,
      },
    }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString(), ms: performance.now() - started }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const admins = Object.fromEntries(TENANTS.map((t) => [t, signSession(t, JWT_SECRET)]));

async function createKey(tenant, name, scopes = "read,write") {
  const res = await send("POST", tenant, "/api/v1/api-keys", { authorization: admins[tenant] }, JSON.stringify({ name, scopes }));
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${res.body}`);
  const { id, key } = JSON.parse(res.body);
  return { id, key, tenant, created: performance.now(), changeStarted: Infinity, changeDone: Infinity };
}

// ---- keys --------------------------------------------------------------------------------------
const stable = [];
const readOnly = [];
const toRevoke = [];
const toRotate = []; // { old, fresh }: fresh is set once the rotation response arrived
for (const tenant of TENANTS) {
  for (let i = 0; i < 10; i++) stable.push(await createKey(tenant, `stable ${i}`));
  readOnly.push(await createKey(tenant, "read-only", "read"));
  for (let i = 0; i < 10; i++) toRevoke.push(await createKey(tenant, `revoked mid-run ${i}`));
  for (let i = 0; i < 5; i++) toRotate.push({ old: await createKey(tenant, `rotated mid-run ${i}`), fresh: null });
}

// ---- the checker -------------------------------------------------------------------------------
const stats = new Map(); // class -> { count, latencies, statuses }
const violations = [];
const wrongByKind = new Map(); // "class: verdict, without its particulars" -> count
let total = 0;

function record(kind, sentAt, res, verdict) {
  const entry = stats.get(kind) ?? { count: 0, latencies: [], statuses: {} };
  entry.count++;
  entry.latencies.push(res.ms);
  entry.statuses[res.status] = (entry.statuses[res.status] ?? 0) + 1;
  stats.set(kind, entry);
  total++;
  if (res.status >= 500) verdict = `5xx: ${res.status} ${res.body.slice(0, 120)}`;
  if (verdict && violations.length < 50) violations.push({ kind, sentAt, status: res.status, verdict });
  else if (verdict) violations.push(null);
  if (verdict) {
    const what = `${kind}: ${verdict.replace(/[\d.]+/g, "N").slice(0, 60)}`;
    wrongByKind.set(what, (wrongByKind.get(what) ?? 0) + 1);
  }
}

/// Judges a response that the edge let through for `key`: what the origin found in the request.
function judgeForwarded(key, res) {
  let seen;
  try {
    seen = JSON.parse(res.body);
  } catch {
    return `admitted, but the body is not the origin's: ${res.body.slice(0, 80)}`;
  }
  if (seen.problems.length) return `origin: ${seen.problems.slice(0, 3).join("; ")}`;
  if (!seen.identity) return "admitted without an identity assertion";
  if (seen.identity.sub !== `apikey:${key.id}` || seen.identity.tenant !== key.tenant) return `assertion names ${seen.identity.sub} of ${seen.identity.tenant}`;
  if (seen.identity.jti !== res.headers["x-request-id"]) return `assertion jti ${seen.identity.jti}, response X-Request-Id ${res.headers["x-request-id"]}`;
  if (seen.tenant !== key.tenant || seen.forwardedHost !== `${key.tenant}.localhost:${port}` || seen.forwardedProto !== "http") {
    return `forwarded as tenant ${seen.tenant}, host ${seen.forwardedHost}, proto ${seen.forwardedProto}`;
  }
  return null;
}

/// A key that must pass: 200, and forwarded as judgeForwarded wants.
function judgeValid(key, res, what = "valid key") {
  return res.status === 200 ? judgeForwarded(key, res) : `${what} refused with ${res.status}`;
}

/// Judges a response for a key that may be revoked or rotated out during the run.
function judgeChangingKey(key, sentAt, receivedAt, res) {
  const { status } = res;
  if (key.changeStarted > receivedAt) return judgeValid(key, res);
  if (key.changeDone < sentAt) return status === 401 ? null : `key accepted (${status}) after its change completed`;
  if (status === 200) return judgeForwarded(key, res);
  return status === 401 ? null : `unexpected ${status} during the change`;
}

const pick = (list) => list[Math.floor(Math.random() * list.length)];
const deadline = Date.now() + SECONDS * 1000;
const running = () => Date.now() < deadline && total < MAX_REQUESTS;

async function client() {
  while (running()) {
    const roll = Math.random();
    const sentAt = performance.now();
    if (roll < 0.47) {
      const key = pick(stable);
      const write = Math.random() < 0.2;
      // A quarter of them also carry forged edge headers, which must not reach the origin.
      const headers = { "x-api-key": key.key, ...(Math.random() < 0.25 ? FORGED : {}) };
      const res = write
        ? await send("POST", key.tenant, `/crm/contacts?n=${total}`, headers, '{"name":"Ada"}')
        : await send("GET", key.tenant, `/crm/contacts/${total}`, headers);
      record("valid", sentAt, res, judgeValid(key, res));
    } else if (roll < 0.52) {
      const key = pick(readOnly);
      if (Math.random() < 0.5) {
        const override = pick(["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"]);
        const res = await send("GET", key.tenant, "/crm/contacts/1", { "x-api-key": key.key, [override]: pick(["DELETE", "put", "PATCH"]) });
        record("read-only, override to a write", sentAt, res, res.status === 403 ? null : `read-only key with a write override got ${res.status}`);
      } else {
        const res = await send("GET", key.tenant, "/crm/contacts/1", { "x-api-key": key.key, "x-http-method-override": "GET" });
        record("read-only, read", sentAt, res, judgeValid(key, res, "read-only key"));
      }
    } else if (roll < 0.57) {
      // The same address's valid keys, which the cache grants, on its tenant and another.
      const key = pick(stable.filter((k) => k.tenant === (Math.random() < 0.5 ? BLOCKED_TENANT : TENANTS[1])));
      const res = await send("GET", key.tenant, "/crm/contacts/1", { "x-api-key": key.key, "cf-connecting-ip": BLOCKED_IP });
      // The grant its creation cached is fresh for 6 minutes (5 for later fills); after that a
      // request may find it stale, need D1, and be refused that lookup: only a longer soak than
      // the default can see a right 429 here.
      const mayBeStale = performance.now() - key.created > GRANT_FRESH_MS;
      record("blocked client, valid", sentAt, res, res.status === 429 && mayBeStale ? null : judgeValid(key, res, "blocked client's valid key"));
      if (sentAt > blockedSince) validWhileBlocked++;
    } else if (roll < 0.67) {
      const key = pick(toRevoke);
      const res = await send("GET", key.tenant, "/crm/deals", { "x-api-key": key.key });
      record("revoked mid-run", sentAt, res, judgeChangingKey(key, sentAt, performance.now(), res));
    } else if (roll < 0.77) {
      const pair = pick(toRotate);
      const useFresh = pair.fresh && Math.random() < 0.5;
      const key = useFresh ? pair.fresh : pair.old;
      const res = await send("GET", key.tenant, "/crm/deals", { "x-api-key": key.key });
      record(useFresh ? "rotated (new secret)" : "rotated (old secret)", sentAt, res,
        useFresh ? judgeValid(key, res, "new secret") : judgeChangingKey(key, sentAt, performance.now(), res));
    } else if (roll < 0.87) {
      const res = await send("GET", pick(TENANTS), "/crm/x", { "x-api-key": `rk_live_${randomBytes(16).toString("hex")}` });
      record("unknown", sentAt, res, res.status === 401 ? null : `unknown key got ${res.status}`);
    } else if (roll < 0.93) {
      const res = await send("GET", pick(TENANTS), "/crm/x", { "x-api-key": `rk_live_${randomBytes(5).toString("hex")}` });
      record("malformed", sentAt, res, res.status === 401 ? null : `malformed key got ${res.status}`);
    } else {
      const key = pick(stable);
      const other = TENANTS.find((t) => t !== key.tenant);
      const res = await send("GET", other, "/crm/x", { "x-api-key": key.key });
      record("other tenant", sentAt, res, res.status === 401 ? null : `foreign key got ${res.status}`);
    }
  }
}

/// Revokes and rotates the mid-run keys at evenly spread moments of the run.
async function scheduledChanges() {
  const changes = [...toRevoke.map((k) => ["revoke", k]), ...toRotate.map((p) => ["rotate", p])].sort(() => Math.random() - 0.5);
  const spacing = (SECONDS * 1000 * 0.8) / changes.length;
  for (const [what, item] of changes) {
    await new Promise((r) => setTimeout(r, spacing));
    if (!running()) break;
    const key = what === "revoke" ? item : item.old;
    key.changeStarted = performance.now();
    const path = what === "revoke" ? `/api/v1/api-keys/${key.id}` : `/api/v1/api-keys/${key.id}/rotate`;
    const res = await send(what === "revoke" ? "DELETE" : "POST", key.tenant, path, { authorization: admins[key.tenant] });
    const expected = what === "revoke" ? 204 : 201;
    if (res.status !== expected) throw new Error(`${what} failed: ${res.status} ${res.body}`);
    key.changeDone = performance.now();
    if (what === "rotate") item.fresh = { ...key, key: JSON.parse(res.body).key, changeStarted: Infinity, changeDone: Infinity };
  }
}

/// Unknown keys from one address on one tenant, one after another: 401 until the limiter blocks
/// the address there, then 429.
let blockedSince = Infinity;
let validWhileBlocked = 0;
async function failingClient() {
  while (running()) {
    const sentAt = performance.now();
    const res = await send("GET", BLOCKED_TENANT, "/crm/x", { "x-api-key": `rk_live_${randomBytes(16).toString("hex")}`, "cf-connecting-ip": BLOCKED_IP });
    record("blocked client, unknown", sentAt, res, res.status === 401 || res.status === 429 ? null : `blocked client's unknown key got ${res.status}`);
    if (res.status === 429) blockedSince = Math.min(blockedSince, sentAt);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/// Create → use → revoke → use, over and over, in every tenant.
let churned = 0;
async function churn() {
  while (running()) {
    const tenant = pick(TENANTS);
    const key = await createKey(tenant, `churn ${churned}`);
    let sentAt = performance.now();
    let res = await send("GET", tenant, "/crm/churn", { "x-api-key": key.key });
    record("created mid-run", sentAt, res, judgeValid(key, res, "new key"));
    const revoke = await send("DELETE", tenant, `/api/v1/api-keys/${key.id}`, { authorization: admins[tenant] });
    if (revoke.status !== 204) throw new Error(`churn revoke failed: ${revoke.status}`);
    sentAt = performance.now();
    res = await send("GET", tenant, "/crm/churn", { "x-api-key": key.key });
    record("revoked by churn", sentAt, res, res.status === 401 ? null : `revoked key accepted with ${res.status}`);
    churned++;
  }
}

const started = performance.now();
const cpuBefore = cpuMicros(pid);
const nodeCpuBefore = process.cpuUsage();
await Promise.all([...Array.from({ length: CONNECTIONS }, client), scheduledChanges(), churn(), failingClient()]);
const elapsed = (performance.now() - started) / 1000;
// The Worker's CPU time (with the local KV and D1 simulators in the same workerd): steadier than
// the rate, which depends on everything else the machine does.
const cpuSeconds = (cpuMicros(pid) - cpuBefore) / 1e6;
const nodeCpu = process.cpuUsage(nodeCpuBefore);
const nodeCpuSeconds = (nodeCpu.user + nodeCpu.system) / 1e6;

// ---- report ------------------------------------------------------------------------------------
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
console.log(`\nsoak: ${SECONDS} s, ${CONNECTIONS} connections, ${SHAPE === "front" ? "the front Worker with the whole Worker behind it" : "the whole Worker alone"}, workerd via Miniflare on 127.0.0.1, compatibility date ${compatibilityDate}`);
console.log(`${total} responses checked in ${elapsed.toFixed(1)} s (${(total / elapsed).toFixed(0)} req/s), ${churned} create/use/revoke cycles`);
console.log(`workerd CPU ${cpuSeconds.toFixed(1)} s, ${((cpuSeconds * 1e6) / total).toFixed(0)} µs per response; this Node process (the clients and the origin) ${nodeCpuSeconds.toFixed(1)} s\n`);
console.log("| class | responses | statuses | p50 ms | p99 ms |");
console.log("| --- | ---: | --- | ---: | ---: |");
for (const [kind, entry] of stats) {
  const sorted = entry.latencies.sort((a, b) => a - b);
  const statuses = Object.entries(entry.statuses).map(([s, n]) => `${s}: ${n}`).join(", ");
  console.log(`| ${kind} | ${entry.count} | ${statuses} | ${percentile(sorted, 50).toFixed(2)} | ${percentile(sorted, 99).toFixed(2)} |`);
}
const fiveXX = [...stats.values()].reduce((n, e) => n + Object.entries(e.statuses).filter(([s]) => s >= 500).reduce((m, [, c]) => m + c, 0), 0);
// Without a block, the blocked client's valid keys proved nothing.
console.log(`blocked client: first 429 after ${((blockedSince - started) / 1000).toFixed(1)} s; ${validWhileBlocked} of its valid-key requests sent after that`);
if (validWhileBlocked === 0) violations.push({ kind: "blocked client, valid", verdict: "no valid-key request while the client was blocked" });
console.log(`\nwrong decisions: ${violations.length}; 5xx responses: ${fiveXX}`);
for (const [what, count] of wrongByKind) console.log(`  ${count} × ${what}`);
for (const v of violations.filter(Boolean).slice(0, 10)) console.log(" ", v);

await mf.dispose();
origin.server.close();
agent.destroy();
process.exit(violations.length === 0 ? 0 : 1);
