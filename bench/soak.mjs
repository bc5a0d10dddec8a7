// Load and soak: the release Worker in workerd (Miniflare's API, no wrangler proxy), real HTTP on
// 127.0.0.1, SOAK_CONNECTIONS concurrent clients for SOAK_SECONDS, mixing valid, unknown,
// malformed and foreign keys with keys revoked and rotated mid-run, while an admin loop creates,
// uses and revokes keys. A checker judges every single response:
//   - a key whose revocation (or rotation) had not started when its response arrived must pass;
//   - a key whose revocation (or rotation) had completed before its request was sent must fail;
//   - only requests that overlap the change may go either way;
//   - unknown, malformed and other tenants' keys always get 401; nothing ever gets a 5xx.
// Exit status 1 on any wrong decision. Usage: make soak  (or node bench/soak.mjs after a build).

import http from "node:http";
import { randomBytes } from "node:crypto";
import { compatibilityDate, sessionToken as signSession, startOrigin, startWorker } from "./harness.mjs";

const SECONDS = Number(process.env.SOAK_SECONDS ?? 60);
const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? 50);
const MAX_REQUESTS = 2_000_000; // a hard bound besides the time
const TENANTS = ["soak-a", "soak-b", "soak-c", "soak-d"];
const JWT_SECRET = randomBytes(24).toString("hex");

const origin = await startOrigin();
const { mf, port } = await startWorker({ originUrl: origin.url, jwtSecret: JWT_SECRET });

// ---- HTTP --------------------------------------------------------------------------------------
const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS + 4 });

function send(method, tenant, path, headers = {}, body) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.request({
      host: "127.0.0.1", port, method, path, agent,
      headers: {
        host: `${tenant}.localhost:${port}`,
        // A random documentation address per request: the failed-authentication limiter is
        // tested elsewhere and must not turn this run's deliberate 401s into 429s.
        "cf-connecting-ip": `2001:db8:50a6::${randomBytes(2).toString("hex")}:${randomBytes(2).toString("hex")}`,
        ...(body ? { "content-type": "application/json" } : {}),
        ...headers,
      },
    }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString(), ms: performance.now() - started }));
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
  return { id, key, tenant, changeStarted: Infinity, changeDone: Infinity };
}

// ---- keys --------------------------------------------------------------------------------------
const stable = [];
const toRevoke = [];
const toRotate = []; // { old, fresh }: fresh is set once the rotation response arrived
for (const tenant of TENANTS) {
  for (let i = 0; i < 10; i++) stable.push(await createKey(tenant, `stable ${i}`));
  for (let i = 0; i < 10; i++) toRevoke.push(await createKey(tenant, `revoked mid-run ${i}`));
  for (let i = 0; i < 5; i++) toRotate.push({ old: await createKey(tenant, `rotated mid-run ${i}`), fresh: null });
}

// ---- the checker -------------------------------------------------------------------------------
const stats = new Map(); // class -> { count, latencies, statuses }
const violations = [];
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
}

/// Judges a response for a key that may be revoked or rotated out during the run.
function judgeChangingKey(key, sentAt, receivedAt, status) {
  if (key.changeStarted > receivedAt) return status === 200 ? null : `valid key refused with ${status}`;
  if (key.changeDone < sentAt) return status === 401 ? null : `key accepted (${status}) after its change completed`;
  return status === 200 || status === 401 ? null : `unexpected ${status} during the change`;
}

const pick = (list) => list[Math.floor(Math.random() * list.length)];
const deadline = Date.now() + SECONDS * 1000;
const running = () => Date.now() < deadline && total < MAX_REQUESTS;

async function client() {
  while (running()) {
    const roll = Math.random();
    const sentAt = performance.now();
    if (roll < 0.55) {
      const key = pick(stable);
      const write = Math.random() < 0.2;
      const res = write
        ? await send("POST", key.tenant, `/crm/contacts?n=${total}`, { "x-api-key": key.key }, '{"name":"Ada"}')
        : await send("GET", key.tenant, `/crm/contacts/${total}`, { "x-api-key": key.key });
      record("valid", sentAt, res, res.status === 200 ? null : `valid key refused with ${res.status}`);
    } else if (roll < 0.67) {
      const key = pick(toRevoke);
      const res = await send("GET", key.tenant, "/crm/deals", { "x-api-key": key.key });
      record("revoked mid-run", sentAt, res, judgeChangingKey(key, sentAt, performance.now(), res.status));
    } else if (roll < 0.77) {
      const pair = pick(toRotate);
      const useFresh = pair.fresh && Math.random() < 0.5;
      const key = useFresh ? pair.fresh : pair.old;
      const res = await send("GET", key.tenant, "/crm/deals", { "x-api-key": key.key });
      record(useFresh ? "rotated (new secret)" : "rotated (old secret)", sentAt, res,
        useFresh ? (res.status === 200 ? null : `new secret refused with ${res.status}`) : judgeChangingKey(key, sentAt, performance.now(), res.status));
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

/// Create → use → revoke → use, over and over, in every tenant.
let churned = 0;
async function churn() {
  while (running()) {
    const tenant = pick(TENANTS);
    const key = await createKey(tenant, `churn ${churned}`);
    let sentAt = performance.now();
    let res = await send("GET", tenant, "/crm/churn", { "x-api-key": key.key });
    record("created mid-run", sentAt, res, res.status === 200 ? null : `new key refused with ${res.status}`);
    const revoke = await send("DELETE", tenant, `/api/v1/api-keys/${key.id}`, { authorization: admins[tenant] });
    if (revoke.status !== 204) throw new Error(`churn revoke failed: ${revoke.status}`);
    sentAt = performance.now();
    res = await send("GET", tenant, "/crm/churn", { "x-api-key": key.key });
    record("revoked by churn", sentAt, res, res.status === 401 ? null : `revoked key accepted with ${res.status}`);
    churned++;
  }
}

const started = performance.now();
await Promise.all([...Array.from({ length: CONNECTIONS }, client), scheduledChanges(), churn()]);
const elapsed = (performance.now() - started) / 1000;

// ---- report ------------------------------------------------------------------------------------
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
console.log(`\nsoak: ${SECONDS} s, ${CONNECTIONS} connections, workerd via Miniflare on 127.0.0.1, compatibility date ${compatibilityDate}`);
console.log(`${total} responses checked in ${elapsed.toFixed(1)} s (${(total / elapsed).toFixed(0)} req/s), ${churned} create/use/revoke cycles\n`);
console.log("| class | responses | statuses | p50 ms | p99 ms |");
console.log("| --- | ---: | --- | ---: | ---: |");
for (const [kind, entry] of stats) {
  const sorted = entry.latencies.sort((a, b) => a - b);
  const statuses = Object.entries(entry.statuses).map(([s, n]) => `${s}: ${n}`).join(", ");
  console.log(`| ${kind} | ${entry.count} | ${statuses} | ${percentile(sorted, 50).toFixed(2)} | ${percentile(sorted, 99).toFixed(2)} |`);
}
const fiveXX = [...stats.values()].reduce((n, e) => n + Object.entries(e.statuses).filter(([s]) => s >= 500).reduce((m, [, c]) => m + c, 0), 0);
console.log(`\nwrong decisions: ${violations.length}; 5xx responses: ${fiveXX}`);
for (const v of violations.filter(Boolean).slice(0, 10)) console.log(" ", v);

await mf.dispose();
origin.server.close();
agent.destroy();
process.exit(violations.length === 0 ? 0 : 1);
