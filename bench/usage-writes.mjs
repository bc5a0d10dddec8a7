// D1 writes per 10,000 valid requests spread over 1,000 keys, with usage counted on the queue
// (the release build) and, for comparison, with the per-isolate lastUsedAt write that it
// replaced (a build of an earlier commit, given with --before). The release build runs in both
// shapes: as in production, the front Worker (build/front/) with the whole Worker behind its
// service binding, each with its own usage buffer; and the whole Worker alone. One workerd
// through Miniflare on 127.0.0.1, a local origin, a Node loop of CONCURRENCY requests at a time.
//
//   node bench/usage-writes.mjs [--before <dir with the earlier build's index.js>]
//
// For each Worker it counts, from the Workers' own log lines, the D1 statements that write:
// - lastUsedAt design: each request whose line says `lastUsedWrite` scheduled one UPDATE;
// - queue design: each consumer batch's line gives its messages, its statements (one read, then
//   the writes) and D1's rows_written;
// and it checks against D1 itself that nothing was lost: every key's last_used_at is set, and
// (queue design) the hourly rows add up to exactly the requests sent.

import { randomBytes } from "node:crypto";
import { asInProduction, releaseScripts, request, sessionToken, startOrigin, startWorker } from "./harness.mjs";

const KEYS = Number(process.env.USAGE_KEYS ?? 1000);
const REQUESTS = Number(process.env.USAGE_REQUESTS ?? 10_000);
const CONCURRENCY = Number(process.env.USAGE_CONCURRENCY ?? 10);
const JWT_SECRET = randomBytes(24).toString("hex");
const TENANT = "usage-bench";
const HOST = `${TENANT}.localhost`;

const beforeAt = process.argv.indexOf("--before");
const builds = [
  { label: "queue, front and whole Worker (this build, as in production)", ...asInProduction },
  { label: "queue, whole Worker alone (this build)", scriptPath: releaseScripts.whole },
];
if (beforeAt > 0) builds.unshift({ label: "lastUsedAt write (before)", scriptPath: `${process.argv[beforeAt + 1].replace(/\/$/, "")}/index.js` });

/// Runs `task(i)` for i in 0..count, `CONCURRENCY` at a time.
async function pool(count, task) {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

async function measure({ label, scriptPath, front }) {
  const lines = [];
  const origin = await startOrigin();
  const worker = await startWorker({
    originUrl: origin.url, jwtSecret: JWT_SECRET, scriptPath, front, usageQueue: true, rateLimit: false,
    onLogLine: (line) => {
      const json = line.slice(line.indexOf("{"), line.lastIndexOf("}") + 1);
      if (json) try { lines.push(JSON.parse(json)); } catch { /* not a JSON line */ }
    },
  });
  try {
    const admin = sessionToken(TENANT, JWT_SECRET);
    const keys = new Array(KEYS);
    await pool(KEYS, async (i) => {
      const res = await request(worker.port, "POST", HOST, "/api/v1/api-keys",
        { authorization: admin, "content-type": "application/json" }, JSON.stringify({ name: `k${i}`, scopes: "read" }));
      if (res.status !== 201) throw new Error(`create: ${res.status} ${res.body}`);
      keys[i] = JSON.parse(res.body).key;
    });
    lines.length = 0;
    const started = performance.now();
    let unexpected = 0;
    await pool(REQUESTS, async (i) => {
      const res = await request(worker.port, "GET", HOST, `/crm/contacts/${i}`,
        { "x-api-key": keys[i % KEYS], "cf-connecting-ip": `198.51.100.${i % 250}` });
      if (res.status !== 200) unexpected++;
    });
    const seconds = (performance.now() - started) / 1000;
    // Wait until the counts have landed (queue design) or nothing moves for 3 s.
    const db = worker.db;
    let quiet = 0;
    let last = -1;
    for (let waited = 0; waited < 60 && quiet < 3; waited++) {
      await new Promise((r) => setTimeout(r, 1000));
      const used = (await db.prepare(`SELECT count(*) AS n FROM api_keys WHERE tenant = ?1 AND last_used_at IS NOT NULL`).bind(TENANT).first()).n;
      quiet = used === last ? quiet + 1 : 0;
      last = used;
    }
    const keysWithLastUsed = last;
    let counted = null;
    try {
      counted = (await db.prepare(`SELECT coalesce(sum(allowed), 0) AS n FROM api_key_usage WHERE tenant = ?1`).bind(TENANT).first()).n;
    } catch { /* the earlier build's schema has no usage table */ }
    const lastUsedWrites = lines.filter((l) => l.lastUsedWrite === true).length;
    const batches = lines.filter((l) => l.event === "usage_batch");
    const sum = (list, field) => list.reduce((total, l) => total + (l[field] ?? 0), 0);
    const writeStatements = lastUsedWrites + sum(batches, "d1Statements") - batches.length;
    return {
      label, seconds, rps: REQUESTS / seconds, unexpected, keysWithLastUsed,
      counted: batches.length ? counted : null,
      writeStatements, readStatements: batches.length,
      // An UPDATE of lastUsedAt writes one row at most (its condition may skip it).
      rowsWritten: batches.length ? `${sum(batches, "d1RowsWritten")}` : `≤ ${lastUsedWrites}`,
      batches: batches.length, messages: sum(batches, "messages"),
      notSent: lines.filter((l) => l.event === "usage_not_sent").length,
      failedBatches: lines.filter((l) => l.event === "usage_batch_failed").length,
    };
  } finally {
    await worker.mf.dispose();
    origin.server.close();
  }
}

const results = [];
for (const build of builds) {
  process.stderr.write(`${build.label}: ${KEYS} keys, ${REQUESTS} requests, ${CONCURRENCY} at a time\n`);
  results.push(await measure(build));
}
const per10k = (n) => ((n * 10_000) / REQUESTS).toFixed(0);
console.log(`\n${REQUESTS} valid requests over ${KEYS} keys, ${CONCURRENCY} at a time, one isolate per Worker:\n`);
console.log("| design | D1 write statements | per 10,000 requests | D1 reads (consumer) | D1 rows written | consumer batches (messages) | keys with lastUsedAt | requests counted | seconds | req/s | unexpected statuses |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const r of results) {
  console.log(`| ${r.label} | ${r.writeStatements} | ${per10k(r.writeStatements)} | ${r.readStatements} | ${r.rowsWritten} | ${r.batches} (${r.messages}) | ${r.keysWithLastUsed} | ${r.counted ?? "n/a"} | ${r.seconds.toFixed(0)} | ${r.rps.toFixed(0)} | ${r.unexpected} |`);
}
for (const r of results) {
  if (r.notSent || r.failedBatches) console.log(`${r.label}: ${r.notSent} sends failed, ${r.failedBatches} consumer batches failed`);
}
