// Case js-same-work: a JavaScript Worker doing all the work that the Rust Worker does in case
// gateway-valid-key (a valid key whose grant is in KV), where case js-minimal does only the
// minimum. Per request, as the Rust gateway does it: the tenant from the Host, the route table's
// test for the service's own paths, the key's format, SHA-256 of the key and of the cache entry's
// name, the blocked-client check, the three KV places read at once (one Promise.all of three
// gets), the decision (a denial first, then the first fresh grant; tenant, expiry, end of grace),
// the scope against the method and the three method-override headers, the lastUsedAt write when
// due (once a minute per key and isolate, after the response), header hygiene (every client
// header name lower-cased with `_` read as `-`; the edge's own removed), X-Rally-Tenant,
// X-Forwarded-Host and X-Forwarded-Proto, the Ed25519 identity assertion (the key imported once
// per isolate, one crypto.subtle.sign per request), the forward with redirect "manual", the
// edge's response headers and one JSON log line with the same fields. Comparing
// gateway-valid-key with js-same-work separates the cost of Rust and wasm-bindgen from the cost
// of the work. BENCHMARKS.md says what still differs.
const KEY_FORMAT = /^rk_live_[0-9a-f]{32}$/;
const TENANT_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const METHOD_OVERRIDE_HEADERS = ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"];
const PLACES = ["denied", "managed", "filled"];
const LAST_USED_INTERVAL_MS = 60_000;
const encoder = new TextEncoder();

// Per isolate, as the Rust Worker keeps them: the parsed signing key and its CryptoKey, the
// lastUsedAt throttle and the blocked clients.
let signingKey;
const lastUsed = new Map();
const blocked = new Map();

export default {
  async fetch(request, env, ctx) {
    const started = Date.now();
    const requestId = request.headers.get("cf-ray") ?? hex(crypto.getRandomValues(new Uint8Array(8)));
    const url = new URL(request.url);
    const log = {
      requestId, method: request.method, path: url.pathname, tenant: null, keyId: null, subject: null, status: 0,
      outcome: "ok", cache: null, d1Queries: 0, kvReads: 0, lastUsedWrite: false, detail: null, ms: 0,
    };
    let response;
    try {
      response = await handle(request, env, ctx, url, requestId, started, log);
    } catch (error) {
      response = json(error.status ?? 500, error.code ?? "internal", error.message);
      log.outcome = error.code ?? "internal";
    }
    response.headers.set("X-Request-Id", requestId);
    response.headers.set("X-Content-Type-Options", "nosniff");
    log.status = response.status;
    log.ms = Date.now() - started;
    console.log(JSON.stringify(log));
    return response;
  },
};

async function handle(request, env, ctx, url, requestId, now, log) {
  const host = request.headers.get("host") ?? "";
  const tenant = tenantOf(host, env.ROOT_DOMAIN);
  if (!tenant) throw refusal(400, "invalid_host", "Unknown host.");
  log.tenant = tenant;
  if (isOwnPath(url.pathname)) throw refusal(404, "not_found", "Not one of the gateway's paths.");

  const presented = request.headers.get("x-api-key");
  let admitted = null;
  if (presented !== null) {
    admitted = await validate(presented, tenant, request.headers.get("cf-connecting-ip"), env, ctx, now, log);
    const overrides = METHOD_OVERRIDE_HEADERS.map((h) => request.headers.get(h)).filter((v) => v !== null);
    const needed = [request.method, ...overrides].some((m) => !isRead(m)) ? "write" : "read";
    const scopes = admitted.scopes.split(",");
    if (!scopes.includes(needed) && !scopes.includes("admin")) {
      throw refusal(403, "forbidden", `This key needs the ${needed} scope for this request.`);
    }
  }

  const headers = new Headers(request.headers);
  for (const name of [...headers.keys()]) {
    if (name === "host" || isEdgeOwned(name)) headers.delete(name);
  }
  headers.set("X-Rally-Tenant", tenant);
  headers.set("X-Forwarded-Host", host);
  headers.set("X-Forwarded-Proto", url.protocol.slice(0, -1));
  if (admitted) {
    headers.set("X-Rally-Api-Key-Id", admitted.keyId);
    headers.set("X-Rally-Scopes", admitted.scopes);
    headers.set("X-Rally-Identity", await assertion(env, admitted, tenant, requestId, request.method, url.pathname, now));
  }
  const body = request.method === "GET" || request.method === "HEAD" ? undefined : request.body;
  const fetched = await fetch(env.ORIGIN_URL.replace(/\/$/, "") + url.pathname + url.search,
    { method: request.method, headers, body, redirect: "manual" });
  return new Response(fetched.body, fetched);
}

async function validate(presented, tenant, client, env, ctx, now, log) {
  const unauthorized = () => refusal(401, "unauthorized", "A valid credential is required.");
  if (!KEY_FORMAT.test(presented)) {
    log.cache = "skipped";
    throw unauthorized();
  }
  const isBlocked = client !== null && (blocked.get(`${tenant}|${client}`) ?? 0) > now;
  const hash = hex(await crypto.subtle.digest("SHA-256", encoder.encode(presented)));
  // The entry's name is a hash of the hash, with the format's version, as the Rust Worker names it.
  const id = hex(await crypto.subtle.digest("SHA-256", encoder.encode(`rally-edge-keys/kv/v2:${hash}`)));
  const [denied, managed, filled] = await Promise.all(PLACES.map((place) => env.API_KEY_CACHE.get(`${place}/${id}`)));
  log.kvReads = 3;
  const entry = decide(parse(denied), parse(managed), parse(filled), now);
  // This baseline has no D1 lookup: a key must be in the cache, as in case gateway-valid-key.
  if (!entry && isBlocked) {
    log.cache = "blocked";
    throw refusal(429, "rate_limited", "Too many failed attempts.");
  }
  log.cache = entry === "deny" ? "negative" : entry ? "hit" : "miss";
  const grant = entry?.grant;
  if (!grant || grant.tenant !== tenant || grant.freshUntil <= now || past(grant.expiresAt, now) || past(grant.validUntil, now)) {
    throw unauthorized();
  }
  log.keyId = grant.keyId;
  if (now - (lastUsed.get(grant.keyId) ?? -Infinity) >= LAST_USED_INTERVAL_MS) {
    lastUsed.set(grant.keyId, now);
    log.lastUsedWrite = true;
    ctx.waitUntil(env.DB.prepare(
      "UPDATE api_keys SET last_used_at = ?3 WHERE id = ?2 AND tenant = ?1 AND (last_used_at IS NULL OR last_used_at <= ?3 - ?4)",
    ).bind(tenant, grant.keyId, now, LAST_USED_INTERVAL_MS).run().catch(() => {}));
  }
  return grant;
}

/// A denial in the denied place first, then the first managed or filled entry still fresh.
function decide(denied, managed, filled, now) {
  if (denied === "deny") return denied;
  return [managed, filled].find((entry) => entry === "deny" || (entry?.grant && entry.grant.freshUntil > now)) ?? null;
}

function parse(text) {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

async function assertion(env, admitted, tenant, requestId, method, path, now) {
  signingKey ??= importSigningKey(env.IDENTITY_SIGNING_KEY);
  const { kid, key } = await signingKey;
  const iat = Math.floor(now / 1000);
  const input = `${base64url(JSON.stringify({ alg: "EdDSA", typ: "JWT", kid }))}.${base64url(JSON.stringify({
    iss: "rally-edge", aud: new URL(env.ORIGIN_URL).origin, sub: `apikey:${admitted.keyId}`, tenant, scopes: admitted.scopes,
    iat, exp: iat + 60, jti: requestId, htm: method, htu: path,
  }))}`;
  const signature = await crypto.subtle.sign("Ed25519", key, encoder.encode(input));
  return `${input}.${base64url(signature)}`;
}

async function importSigningKey(text) {
  const { kty, crv, x, d, kid } = JSON.parse(text);
  return { kid, key: await crypto.subtle.importKey("jwk", { kty, crv, x, d }, "Ed25519", false, ["sign"]) };
}

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

function isOwnPath(path) {
  return path === "/healthz" || path === "/.well-known/jwks.json" || path.startsWith("/api/v1/") || path === "/api/v1"
    || path.startsWith("/settings/");
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

function refusal(status, code, message) {
  return Object.assign(new Error(message), { status, code });
}

function json(status, code, message) {
  return new Response(JSON.stringify({ error: { code, message } }), { status, headers: { "content-type": "application/json" } });
}

function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function base64url(data) {
  const bytes = typeof data === "string" ? encoder.encode(data) : new Uint8Array(data);
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}
