// Case js-same-work: a JavaScript Worker doing all the work that the Rust Worker does in case
// gateway-valid-key, where case js-minimal does only the minimum. On top of js-minimal it checks
// the key's format and the method's scope, removes client-sent X-Rally-* headers, adds the edge's
// headers to the origin's response (X-Request-Id, nosniff) and prints one JSON log line per
// request. Comparing gateway-valid-key with js-same-work separates the cost of Rust/wasm from the
// cost of the extra work.
const KEY_FORMAT = /^rk_live_[0-9a-f]{32}$/;

export default {
  async fetch(request, env) {
    const started = Date.now();
    const requestId = request.headers.get("cf-ray") ?? crypto.randomUUID().slice(0, 16);
    const url = new URL(request.url);
    const tenant = url.hostname.split(".")[0];
    const log = { requestId, method: request.method, path: url.pathname, tenant, keyId: null, status: 0, cache: null };
    let response;
    const key = request.headers.get("x-api-key");
    const entry = key && KEY_FORMAT.test(key) ? await lookup(env, key) : null;
    log.cache = entry ? "hit" : "skipped";
    if (!entry || entry.tenant !== tenant) {
      response = new Response('{"error":{"code":"unauthorized","message":"A valid credential is required."}}', { status: 401 });
    } else if (!allows(entry.scopes, request.method)) {
      response = new Response('{"error":{"code":"forbidden","message":"Insufficient scope."}}', { status: 403 });
    } else {
      log.keyId = entry.id;
      const headers = new Headers(request.headers);
      for (const name of [...headers.keys()]) {
        if (name === "x-api-key" || name === "host" || name.startsWith("x-rally-")) headers.delete(name);
      }
      headers.set("x-rally-tenant", tenant);
      headers.set("x-rally-api-key-id", entry.id);
      headers.set("x-rally-scopes", entry.scopes);
      const fetched = await fetch(env.ORIGIN_URL + url.pathname + url.search,
        { method: request.method, headers, body: request.body, redirect: "manual" });
      response = new Response(fetched.body, fetched);
    }
    response.headers.set("X-Request-Id", requestId);
    response.headers.set("X-Content-Type-Options", "nosniff");
    log.status = response.status;
    log.ms = Date.now() - started;
    console.log(JSON.stringify(log));
    return response;
  },
};

async function lookup(env, key) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
  const hash = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return env.API_KEY_CACHE.get(`key/${hash}`, "json");
}

function allows(scopes, method) {
  const list = scopes.split(",");
  if (list.includes("admin")) return true;
  return ["GET", "HEAD", "OPTIONS"].includes(method) ? list.includes("read") : list.includes("write");
}
