// Case js-same-work: a JavaScript Worker doing all the work that the Rust Worker does in case
// gateway-valid-key (a valid key whose grant is in KV), where case js-minimal does only the
// minimum. Per request, in the Rust Worker's order (its fast path, src/gate.rs, which calls
// src/routes/gateway.rs, src/app.rs `validate_cached` and `settle`, src/service.rs
// `Cached::validation`, and src/lib.rs `respond`):
//   - the request id (CF-Ray, else 8 random bytes in hex), the tenant from the Host, the test for
//     the tenantless paths and the route table's test for the service's own paths;
//   - the blocked-client check (this isolate's map of (tenant, client) pairs over the limit),
//     only when the cache does not decide;
//   - the key's format, SHA-256 of the key and of the cache entry's name, the three KV places
//     read at once (one bulk get of the three names), each entry parsed as JSON, the decision (a
//     denial first, then the first fresh grant) and the admission (tenant, freshness, expiry,
//     end of grace, the scope list parsed, the allow-list parsed from its stored form);
//   - the refused key, if any, noted for the usage counts;
//   - the allow-list: every CIDR block of the grant's `allowedIps` parsed and checked as
//     src/domain/address.rs does (family, prefix, host bits, no IPv4-mapped block, repeats
//     dropped), and CF-Connecting-IP parsed and tested against each (403 ip_not_allowed);
//   - the scope against the method and the three method-override headers (403 forbidden);
//   - header hygiene (every client header name lower-cased with `_` read as `-`; the edge's own
//     and Host removed), X-Rally-Tenant, X-Forwarded-Host and X-Forwarded-Proto, the key id and
//     scopes, and the Ed25519 identity assertion (the key imported once per isolate, one
//     crypto.subtle.sign per request);
//   - the forward with redirect "manual", and the origin's response re-made with mutable headers;
//   - the usage count (src/domain/usage.rs `UsageBuffer::record`): per (key, tenant, UTC hour,
//     outcome) in this isolate's map, the last (time, canonical IP, country from request.cf) per
//     key for outcomes that use the key (request.cf read only for a key new to the buffer or a new
//     address, as the Rust buffer does), and a send scheduled at most once a second with
//     ctx.waitUntil (a delayed sendBatch on env.USAGE_QUEUE, messages of at most 500 rows, two
//     messages a sendBatch), or at once at 1,000 rows;
//   - on a 401, one failure counted on AUTH_FAILURE_LIMITER for (tenant, client), and the pair
//     blocked in this isolate once the limiter says no (429);
//   - X-Request-Id and X-Content-Type-Options on the response, and one JSON log line with the
//     fields of src/log.rs, in their order.
// It also consumes its own usage queue into D1 as src/usage_queue.rs `consume` does (the same
// three statements in one D1 batch), since the Rust Worker's consumer runs in its isolate too.
//
// What still differs from the Rust path:
//   - SHA-256 is the runtime's (crypto.subtle.digest, native and asynchronous); the Rust Worker
//     hashes inside the wasm (the sha2 crate), synchronously.
//   - JSON is V8's (JSON.parse/stringify) where the Rust Worker uses serde_json in the wasm: KV
//     entries, the log line, the assertion's header and claims, queue messages (the Rust Worker
//     serialises a message to text and has the runtime parse it back; this one hands the object
//     to sendBatch directly), and a consumed message's body (the Rust Worker stringifies it and
//     parses it with serde; this one checks its shape).
//   - Maps are JavaScript Maps keyed by strings joined from their parts, where the Rust Worker
//     hashes tuples; IP addresses are parsed by the code below rather than by std::net.
//   - No crossing between wasm and JavaScript: every runtime object is used directly.
//   - The D1 lookup of a cache miss, the cache fill, the lastUsed* report and everything that is
//     not the gateway are absent: this Worker answers only the gateway's paths and only from KV.
//   - Errors other than the gateway's (404 for the service's own paths, 500 otherwise) are
//     simplified.
const KEY_FORMAT = /^rk_live_[0-9a-f]{32}$/;
const TENANT_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const METHOD_OVERRIDE_HEADERS = ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"];
const PLACES = ["denied", "managed", "filled"];
const SCOPES = ["read", "write", "admin"];
const ALLOW_LIST_MAX_ENTRIES = 50;
const RATE_LIMIT_PERIOD_MS = 60_000;
// src/domain/usage.rs
const OUTCOMES = ["allowed", "forbidden", "ipDenied", "revoked", "expired"];
const HOUR_MS = 3_600_000;
const ROWS_PER_MESSAGE = 500;
const MESSAGES_PER_SEND = 2;
const FLUSH_ROWS = ROWS_PER_MESSAGE * MESSAGES_PER_SEND;
const FLUSH_INTERVAL_MS = 1_000;
// src/store/usage.rs, the consumer's statements.
const ROWS_PER_STATEMENT = 4_000;
const COUNTED = "SELECT id FROM usage_messages WHERE id IN (SELECT value FROM json_each(?1))";
const MARK_COUNTED = "INSERT INTO usage_messages (id, received_at) SELECT value, ?2 FROM json_each(?1)";
const ADD_COUNTS = "INSERT INTO api_key_usage \
 (tenant, key_id, hour_start, allowed, forbidden, ip_denied, revoked, expired) \
 SELECT json_extract(value, '$.tenant'), json_extract(value, '$.keyId'), \
 json_extract(value, '$.hour'), json_extract(value, '$.counts[0]'), \
 json_extract(value, '$.counts[1]'), json_extract(value, '$.counts[2]'), \
 json_extract(value, '$.counts[3]'), json_extract(value, '$.counts[4]') \
 FROM json_each(?1) \
 WHERE EXISTS (SELECT 1 FROM api_keys k \
 WHERE k.id = json_extract(value, '$.keyId') \
 AND k.tenant = json_extract(value, '$.tenant')) \
 ON CONFLICT (tenant, key_id, hour_start) DO UPDATE SET \
 allowed = allowed + excluded.allowed, forbidden = forbidden + excluded.forbidden, \
 ip_denied = ip_denied + excluded.ip_denied, revoked = revoked + excluded.revoked, \
 expired = expired + excluded.expired";
const MOVE_LAST_USED = "UPDATE api_keys \
 SET last_used_at = u.at, last_used_ip = u.ip, last_used_country = u.country \
 FROM (SELECT json_extract(value, '$.tenant') AS tenant, \
 json_extract(value, '$.keyId') AS key_id, json_extract(value, '$.at') AS at, \
 json_extract(value, '$.ip') AS ip, json_extract(value, '$.country') AS country \
 FROM json_each(?1)) AS u \
 WHERE api_keys.id = u.key_id AND api_keys.tenant = u.tenant \
 AND (api_keys.last_used_at IS NULL OR api_keys.last_used_at < u.at)";
const encoder = new TextEncoder();

// Per isolate, as the Rust Worker keeps them: the parsed signing key and its CryptoKey, the
// origin's parts, the blocked clients and the usage buffer.
let signingKey;
let origin;
const blocked = new Map();
const usage = { counts: new Map(), last: new Map(), scheduled: false, requests: 0 };

export default {
  async fetch(request, env, ctx) {
    const started = Date.now();
    const requestId = request.headers.get("cf-ray") ?? hex(crypto.getRandomValues(new Uint8Array(8)));
    const url = new URL(request.url);
    const log = {
      requestId, method: request.method, path: url.pathname, tenant: null, keyId: null, subject: null, status: 0,
      outcome: "ok", cache: null, d1Queries: 0, kvReads: 0, usage: null, usageSend: null, detail: null, ms: 0,
    };
    const state = { counted: null, client: request.headers.get("cf-connecting-ip") };
    let response;
    let error = null;
    try {
      response = await handle(request, env, ctx, url, requestId, started, log, state);
    } catch (thrown) {
      error = thrown;
    }
    if (state.counted) recordUsage(request, env, ctx, log, state, error, started);
    if (error?.code === "unauthorized") error = await countAuthFailure(env, log.tenant, state.client, started, error);
    if (error) {
      response = json(error.status ?? 500, error.code ?? "internal_error", error.message, error.headers);
      log.outcome = error.code ?? "internal_error";
    }
    response.headers.set("X-Request-Id", requestId);
    response.headers.set("X-Content-Type-Options", "nosniff");
    log.status = response.status;
    log.ms = Date.now() - started;
    console.log(JSON.stringify(log));
    return response;
  },

  async queue(batch, env) {
    await consume(batch, env, Date.now());
  },
};

async function handle(request, env, ctx, url, requestId, now, log, state) {
  const host = request.headers.get("host") ?? "";
  const segments = url.pathname.replace(/^\/+/, "").split("/");
  if (segments[0] === "api" && segments[1] === "v1" && segments[2] === "secret-scanning") {
    throw refusal(404, "not_found", "Not found.");
  }
  const tenant = tenantOf(host, env.ROOT_DOMAIN);
  if (!tenant) throw refusal(400, "invalid_host", "Use your tenant's address, {tenant}.rallycrm.io.");
  log.tenant = tenant;
  if (isOwnPath(segments)) throw refusal(404, "not_found", "Not found.");

  const presented = request.headers.get("x-api-key");
  let admitted = null;
  if (presented !== null) {
    admitted = await validate(presented, tenant, state, env, now, log);
    const overrides = METHOD_OVERRIDE_HEADERS.map((h) => request.headers.get(h)).filter((v) => v !== null);
    const needed = [request.method, ...overrides].some((m) => !isRead(m)) ? "write" : "read";
    if (!admitted.scopes.has(needed) && !admitted.scopes.has("admin")) {
      throw refusal(403, "forbidden", `This key needs the ${needed} scope for this request.`);
    }
  }

  origin ??= parseOrigin(env.ORIGIN_URL);
  const headers = new Headers(request.headers);
  for (const name of [...headers.keys()]) {
    if (name === "host" || isEdgeOwned(name)) headers.delete(name);
  }
  headers.set("X-Rally-Tenant", tenant);
  headers.set("X-Forwarded-Host", host);
  headers.set("X-Forwarded-Proto", url.protocol.slice(0, -1));
  if (admitted) {
    const assertionText = await assertion(env, admitted, tenant, requestId, request.method, url.pathname, now);
    headers.set("X-Rally-Api-Key-Id", admitted.keyId);
    headers.set("X-Rally-Scopes", admitted.scopeText);
    headers.set("X-Rally-Identity", assertionText);
  }
  const body = request.method === "GET" || request.method === "HEAD" ? undefined : request.body;
  let fetched;
  try {
    fetched = await fetch(origin.base + url.pathname + url.search, { method: request.method, headers, body, redirect: "manual" });
  } catch {
    throw refusal(502, "origin_unreachable", "The CRM origin could not be reached.");
  }
  return new Response(fetched.body, { status: fetched.status, statusText: fetched.statusText, headers: fetched.headers });
}

async function validate(presented, tenant, state, env, now, log) {
  const unauthorized = () => refusal(401, "unauthorized", "A valid API key or session token is required.");
  const client = state.client;
  if (!KEY_FORMAT.test(presented)) {
    log.cache = "skipped";
    throw unauthorized();
  }
  const hash = hex(await crypto.subtle.digest("SHA-256", encoder.encode(presented)));
  // The entry's name is a hash of the hash, with the format's version, as the Rust Worker names it.
  const id = hex(await crypto.subtle.digest("SHA-256", encoder.encode(`rally-edge-keys/kv/v2:${hash}`)));
  // One bulk read of the three places, as src/boundary.rs `read_all`.
  const names = PLACES.map((place) => `${place}/${id}`);
  const found = await env.API_KEY_CACHE.get(names);
  const [denied, managed, filled] = names.map((name) => found.get(name) ?? null);
  log.kvReads = 3;
  const entry = decide(parse(denied), parse(managed), parse(filled), now);
  // This baseline has no D1 lookup: a key must be in the cache, as in case gateway-valid-key.
  // Looked up only when the cache does not decide, as the Rust Worker's fast path does.
  if (!entry && client !== null && (blocked.get(`${tenant}|${client}`) ?? 0) > now) {
    log.cache = "blocked";
    throw refusal(429, "rate_limited", "Too many failed attempts; retry later.", { "Retry-After": "60" });
  }
  log.cache = entry === null ? "miss" : entry.deny !== undefined ? "negative" : "hit";
  const admitted = entry ? admit(entry, tenant, now) : null;
  if (!admitted) {
    const refused = entry ? refusedKey(entry, tenant, now) : null;
    if (refused) state.counted = refused;
    throw unauthorized();
  }
  log.keyId = admitted.keyId;
  state.counted = { keyId: admitted.keyId, outcome: "allowed" };
  if (admitted.allowList && !allowListAdmits(admitted.allowList, client)) {
    throw refusal(403, "ip_not_allowed", "This API key may not be used from this client address.");
  }
  return admitted;
}

// ---- cache entries (src/domain/cache_entry.rs) -------------------------------------------------
// An entry is {grant}, "deny" or {denyKey}; parsed here to {grant} or {deny: null | denied key}.
function parse(text) {
  if (text === null) return null;
  try {
    const value = JSON.parse(text);
    if (value === "deny") return { deny: null };
    if (value?.grant && typeof value.grant.keyId === "string") return { grant: value.grant };
    if (value?.denyKey && typeof value.denyKey.keyId === "string") return { deny: value.denyKey };
    return null;
  } catch {
    return null;
  }
}

/// A denial in the denied place first, then the first managed or filled entry still fresh.
function decide(denied, managed, filled, now) {
  if (denied?.deny !== undefined) return denied;
  return [managed, filled].find((entry) => entry && (entry.deny !== undefined || entry.grant.freshUntil > now)) ?? null;
}

function admit(entry, tenant, now) {
  const grant = entry.grant;
  if (!grant || grant.tenant !== tenant || grant.freshUntil <= now || past(grant.expiresAt, now) || past(grant.validUntil, now)) {
    return null;
  }
  // A scope list or an allow-list that does not parse can only come from a corrupted entry.
  const scopes = parseScopes(grant.scopes);
  if (!scopes) return null;
  let allowList = null;
  if (grant.allowedIps !== undefined && grant.allowedIps !== null) {
    allowList = parseAllowList(grant.allowedIps.split(","));
    if (!allowList) return null;
  }
  return { keyId: grant.keyId, scopes, scopeText: [...scopes].join(","), allowList };
}

function refusedKey(entry, tenant, now) {
  let keyId;
  let owner;
  let reason;
  if (entry.deny !== undefined) {
    if (entry.deny === null) return null;
    ({ keyId, tenant: owner, reason } = entry.deny);
  } else if (entry.grant.freshUntil > now) {
    if (past(entry.grant.expiresAt, now)) reason = "expired";
    else if (past(entry.grant.validUntil, now)) reason = "rotatedOut";
    else return null;
    ({ keyId, tenant: owner } = entry.grant);
  } else {
    return null;
  }
  return owner === tenant ? { keyId, outcome: reason === "revoked" ? "revoked" : "expired" } : null;
}

/// The canonical scope set in canonical order, or null for an unknown or empty scope.
function parseScopes(text) {
  const given = text.split(",").map((s) => s.trim());
  if (given.some((s) => !SCOPES.includes(s))) return null;
  const scopes = new Set(SCOPES.filter((s) => given.includes(s)));
  return scopes.size ? scopes : null;
}

// ---- IP addresses and allow-lists (src/domain/address.rs) --------------------------------------
// An address is { v4, groups }: four octets, or eight 16-bit groups.

function parseIp(text) {
  return text.includes(":") ? parseIpv6(text) : parseIpv4(text);
}

/// Four decimal octets without leading zeros, as Rust's Ipv4Addr reads them.
function parseIpv4(text) {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const groups = new Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (p.length === 0 || p.length > 3 || (p.length > 1 && p[0] === "0")) return null;
    let n = 0;
    for (let j = 0; j < p.length; j++) {
      const c = p.charCodeAt(j) - 48;
      if (c < 0 || c > 9) return null;
      n = n * 10 + c;
    }
    if (n > 255) return null;
    groups[i] = n;
  }
  return { v4: true, groups };
}

/// Hexadecimal groups of one to four digits, at most one `::`, and an IPv4 address in place of
/// the last two groups.
function parseIpv6(text) {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const words = (half) => (half === "" ? [] : half.split(":"));
  const head = words(halves[0]);
  const tail = halves.length === 2 ? words(halves[1]) : [];
  const groups = [];
  const read = (parts, last) => {
    const out = [];
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (last && i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIpv4(p);
        if (!v4) return null;
        out.push((v4.groups[0] << 8) | v4.groups[1], (v4.groups[2] << 8) | v4.groups[3]);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return null;
      out.push(parseInt(p, 16));
    }
    return out;
  };
  const first = read(head, halves.length === 1);
  const second = read(tail, true);
  if (!first || !second) return null;
  if (halves.length === 1) {
    if (first.length !== 8) return null;
    groups.push(...first);
  } else {
    if (first.length + second.length > 7) return null;
    groups.push(...first, ...new Array(8 - first.length - second.length).fill(0), ...second);
  }
  return { v4: false, groups };
}

const isMapped = (ip) => !ip.v4 && ip.groups[5] === 0xffff && ip.groups.slice(0, 5).every((g) => g === 0);
/// An IPv4-mapped IPv6 address as the IPv4 address it maps.
const canonical = (ip) => (isMapped(ip)
  ? { v4: true, groups: [ip.groups[6] >> 8, ip.groups[6] & 0xff, ip.groups[7] >> 8, ip.groups[7] & 0xff] }
  : ip);

/// `ip` with every bit past `prefix` cleared.
function networkOf(ip, prefix) {
  const width = ip.v4 ? 8 : 16;
  return {
    v4: ip.v4,
    groups: ip.groups.map((g, i) => {
      const keep = Math.max(0, Math.min(width, prefix - i * width));
      return keep === 0 ? 0 : g & ((0xffff << (width - keep)) & ((1 << width) - 1));
    }),
  };
}

const sameIp = (x, y) => x.v4 === y.v4 && x.groups.every((g, i) => g === y.groups[i]);

/// `address` or `address/prefix`, a network address without host bits, not IPv4-mapped.
function parseBlock(text) {
  const slash = text.indexOf("/");
  const address = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!address || isMapped(address)) return null;
  const max = address.v4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const digits = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(digits)) return null;
    prefix = Number(digits);
    if (prefix > max) return null;
  }
  const network = networkOf(address, prefix);
  return sameIp(network, address) ? { network, prefix } : null;
}

/// 1 to 50 blocks, repeats dropped; null if any entry is not a block.
function parseAllowList(entries) {
  if (entries.length > ALLOW_LIST_MAX_ENTRIES) return null;
  const blocks = [];
  for (const entry of entries) {
    const block = parseBlock(entry);
    if (!block) return null;
    if (!blocks.some((b) => b.prefix === block.prefix && sameIp(b.network, block.network))) blocks.push(block);
  }
  return blocks.length ? blocks : null;
}

/// No address, or one that does not parse, is outside every list.
function allowListAdmits(blocks, client) {
  const parsed = client === null ? null : parseIp(client.trim());
  if (!parsed) return false;
  const address = canonical(parsed);
  return blocks.some((b) => b.network.v4 === address.v4 && sameIp(networkOf(address, b.prefix), b.network));
}

/// The canonical text of an address (RFC 5952 for IPv6, as Rust's Ipv6Addr displays it).
function formatIp(ip) {
  if (ip.v4) return ip.groups.join(".");
  if (isMapped(ip)) return `::ffff:${canonical(ip).groups.join(".")}`;
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (ip.groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && ip.groups[j] === 0) j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j;
  }
  const text = (groups) => groups.map((g) => g.toString(16)).join(":");
  return best < 0 ? text(ip.groups) : `${text(ip.groups.slice(0, best))}::${text(ip.groups.slice(best + bestLength))}`;
}

// ---- usage (src/domain/usage.rs, src/usage_queue.rs, src/app.rs record_usage) -----------------

function recordUsage(request, env, ctx, log, state, error, now) {
  let { keyId, outcome } = state.counted;
  if (outcome === "allowed" && error?.code === "forbidden") outcome = "forbidden";
  if (outcome === "allowed" && error?.code === "ip_not_allowed") outcome = "ipDenied";
  const usesTheKey = outcome === "allowed" || outcome === "forbidden";
  const hour = now - (((now % HOUR_MS) + HOUR_MS) % HOUR_MS);
  const countKey = `${keyId}|${log.tenant}|${hour}`;
  let row = usage.counts.get(countKey);
  if (!row) {
    row = { keyId, tenant: log.tenant, hour, counts: [0, 0, 0, 0, 0] };
    usage.counts.set(countKey, row);
  }
  row.counts[OUTCOMES.indexOf(outcome)] += 1;
  usage.requests += 1;
  if (usesTheKey) {
    const parsed = state.client === null ? null : parseIp(state.client.trim());
    const ip = parsed ? formatIp(parsed) : null;
    // As the Rust buffer: keyed by the key's id, and request.cf read only for a key new to the
    // buffer or a new address (the same address is in the same country).
    const readCountry = () => {
      const country = request.cf?.country;
      return typeof country === "string" && /^[A-Z0-9]{2}$/.test(country) ? country : null;
    };
    const known = usage.last.get(keyId);
    if (!known) usage.last.set(keyId, { keyId, tenant: log.tenant, at: now, ip, country: readCountry() });
    else if (now >= known.at) {
      known.at = now;
      if (known.ip !== ip) [known.ip, known.country] = [ip, readCountry()];
    }
  }
  let send = null;
  if (usage.counts.size + usage.last.size >= FLUSH_ROWS) {
    ctx.waitUntil(sendUsage(env, takeUsage()));
    send = "now";
  } else if (!usage.scheduled) {
    usage.scheduled = true;
    ctx.waitUntil(new Promise((resolve) => setTimeout(resolve, FLUSH_INTERVAL_MS)).then(() => {
      usage.scheduled = false;
      return sendUsage(env, takeUsage());
    }));
    send = "scheduled";
  }
  log.usage = outcome;
  log.usageSend = send;
}

function takeUsage() {
  const rows = [...[...usage.counts.values()].map((r) => ["counts", r]), ...[...usage.last.values()].map((r) => ["last", r])];
  usage.counts = new Map();
  usage.last = new Map();
  const requests = usage.requests;
  usage.requests = 0;
  const messages = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_MESSAGE) {
    const message = { counts: [], last: [] };
    for (const [kind, row] of rows.slice(i, i + ROWS_PER_MESSAGE)) message[kind].push(row);
    messages.push(message);
  }
  return { messages, requests };
}

async function sendUsage(env, taken) {
  if (taken.messages.length === 0) return;
  if (!env.USAGE_QUEUE) return notSent(taken, "binding USAGE_QUEUE is missing");
  for (let i = 0; i < taken.messages.length; i += MESSAGES_PER_SEND) {
    try {
      await env.USAGE_QUEUE.sendBatch(taken.messages.slice(i, i + MESSAGES_PER_SEND).map((body) => ({ body, contentType: "json" })));
    } catch (error) {
      return notSent(taken, `sendBatch: ${error}`);
    }
  }
}

function notSent(taken, detail) {
  console.error(JSON.stringify({ event: "usage_not_sent", detail, requests: taken.requests, messages: taken.messages.length }));
}

/// The consumer: the batch's messages not yet counted, summed, in one D1 batch.
async function consume(batch, env, now) {
  const ids = [];
  const messages = [];
  let unreadable = 0;
  for (const message of batch.messages) {
    const body = message.body;
    if (body && Array.isArray(body.counts) && Array.isArray(body.last)) {
      ids.push(message.id);
      messages.push(body);
    } else {
      unreadable++;
    }
  }
  const failed = (error) => {
    batch.retryAll();
    console.error(JSON.stringify({ event: "usage_batch_failed", detail: String(error) }));
  };
  let counted;
  try {
    counted = new Set((await env.DB.prepare(COUNTED).bind(JSON.stringify(ids)).all()).results.map((r) => r.id));
  } catch (error) {
    return failed(error);
  }
  const freshIds = [];
  const counts = new Map();
  const last = new Map();
  ids.forEach((id, i) => {
    if (counted.has(id)) return;
    freshIds.push(id);
    for (const row of messages[i].counts) {
      const key = `${row.tenant}|${row.keyId}|${row.hour}`;
      const sum = counts.get(key) ?? { keyId: row.keyId, tenant: row.tenant, hour: row.hour, counts: [0, 0, 0, 0, 0] };
      row.counts.forEach((c, j) => { sum.counts[j] += c; });
      counts.set(key, sum);
    }
    for (const row of messages[i].last) {
      const key = `${row.tenant}|${row.keyId}`;
      if (!(last.get(key)?.at >= row.at)) last.set(key, row);
    }
  });
  const countRows = [...counts.values()].filter((row) => row.counts.some((c) => c > 0));
  const lastRows = [...last.values()];
  let written = { statements: 0, rows: 0 };
  if (freshIds.length) {
    const statements = [env.DB.prepare(MARK_COUNTED).bind(JSON.stringify(freshIds), now)];
    for (let i = 0; i < countRows.length; i += ROWS_PER_STATEMENT) {
      statements.push(env.DB.prepare(ADD_COUNTS).bind(JSON.stringify(countRows.slice(i, i + ROWS_PER_STATEMENT))));
    }
    for (let i = 0; i < lastRows.length; i += ROWS_PER_STATEMENT) {
      statements.push(env.DB.prepare(MOVE_LAST_USED).bind(JSON.stringify(lastRows.slice(i, i + ROWS_PER_STATEMENT))));
    }
    try {
      const results = await env.DB.batch(statements);
      written = { statements: statements.length, rows: results.reduce((n, r) => n + (r.meta?.rows_written ?? 0), 0) };
    } catch (error) {
      return failed(error);
    }
  }
  console.log(JSON.stringify({
    event: "usage_batch", messages: freshIds.length, alreadyCounted: counted.size, unreadable, hourRows: countRows.length,
    keys: lastRows.length, d1Statements: written.statements + 1, d1RowsWritten: written.rows,
  }));
}

// ---- the failed-authentication limiter (src/rate_limit.rs) -------------------------------------

async function countAuthFailure(env, tenant, client, now, error) {
  if (client === null || !env.AUTH_FAILURE_LIMITER || tenant === null) return error;
  const counted = `${tenant}|${client}`;
  try {
    const outcome = await env.AUTH_FAILURE_LIMITER.limit({ key: `auth-failure:${counted}` });
    if (!outcome.success) {
      blocked.set(counted, now + RATE_LIMIT_PERIOD_MS);
      return refusal(429, "rate_limited", "Too many failed attempts; retry later.", { "Retry-After": "60" });
    }
  } catch {
    // A limiter that fails lets the request's own answer through.
  }
  return error;
}

// ---- the identity assertion (src/domain/identity.rs, src/signer.rs) ----------------------------

async function assertion(env, admitted, tenant, requestId, method, path, now) {
  signingKey ??= importSigningKey(env.IDENTITY_SIGNING_KEY);
  const { kid, key } = await signingKey;
  const iat = Math.floor(now / 1000);
  const input = `${base64url(JSON.stringify({ alg: "EdDSA", typ: "JWT", kid }))}.${base64url(JSON.stringify({
    iss: "rally-edge", aud: origin.origin, sub: `apikey:${admitted.keyId}`, tenant, scopes: admitted.scopeText,
    iat, exp: iat + 60, jti: requestId, htm: method, htu: path,
  }))}`;
  let signature;
  try {
    signature = await crypto.subtle.sign("Ed25519", key, encoder.encode(input));
  } catch {
    throw refusal(503, "identity_not_configured", "The edge cannot sign identity assertions; the request was not forwarded.");
  }
  return `${input}.${base64url(signature)}`;
}

async function importSigningKey(text) {
  const { kty, crv, x, d, kid } = JSON.parse(text);
  return { kid, key: await crypto.subtle.importKey("jwk", { kty, crv, x, d }, "Ed25519", false, ["sign"]) };
}

function parseOrigin(text) {
  const parsed = new URL(text);
  return { origin: parsed.origin, base: text.replace(/\/$/, "") };
}

// ---- small things ------------------------------------------------------------------------------

function tenantOf(host, rootDomain) {
  const name = host.toLowerCase().replace(/:\d+$/, "");
  for (const root of [rootDomain.toLowerCase(), "localhost"]) {
    if (root && name.endsWith(`.${root}`)) {
      const label = name.slice(0, -root.length - 1);
      return TENANT_LABEL.test(label) ? label : null;
    }
  }
  return null;
}

/// The service's own paths, which src/route.rs's table sends elsewhere than the gateway.
function isOwnPath(segments) {
  const [first, second, third] = segments;
  if (segments.length === 1 && first === "healthz") return true;
  if (segments.length === 2 && first === ".well-known" && second === "jwks.json") return true;
  if (first === "settings") return true;
  return first === "api" && second === "v1"
    && ((segments.length === 3 && third === "openapi.json") || third === "api-keys" || third === "secret-scanning" || third === "audit-events");
}

function isRead(method) {
  return ["GET", "HEAD", "OPTIONS"].includes(method.trim().toUpperCase());
}

function isEdgeOwned(name) {
  const normal = name.toLowerCase().replaceAll("_", "-");
  return normal === "x-api-key" || normal === "x-forwarded-host" || normal === "x-forwarded-proto" || normal.startsWith("x-rally-");
}

function past(deadline, now) {
  return deadline !== null && deadline !== undefined && deadline <= now;
}

function refusal(status, code, message, headers = {}) {
  return Object.assign(new Error(message), { status, code, headers });
}

function json(status, code, message, headers = {}) {
  return new Response(JSON.stringify({ error: { code, message } }), {
    status, headers: { "content-type": "application/json", ...headers },
  });
}

function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function base64url(data) {
  const bytes = typeof data === "string" ? encoder.encode(data) : new Uint8Array(data);
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}
