// Case js-minimal: the obvious JavaScript Worker for the same job as case gateway-valid-key. It
// hashes the key with crypto.subtle, reads one KV entry, checks the tenant and forwards to the
// origin with the identity headers. It does less than the Rust Worker (no format check, no
// negative cache, no rate limit, no log line): it is the baseline a user could write instead.
export default {
  async fetch(request, env) {
    const key = request.headers.get("x-api-key");
    if (!key) return new Response('{"error":"unauthorized"}', { status: 401 });
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
    const hash = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
    const entry = await env.API_KEY_CACHE.get(`key/${hash}`, "json");
    const url = new URL(request.url);
    const tenant = url.hostname.split(".")[0];
    if (!entry || entry.tenant !== tenant) return new Response('{"error":"unauthorized"}', { status: 401 });
    const headers = new Headers(request.headers);
    headers.delete("x-api-key");
    headers.set("x-rally-tenant", tenant);
    headers.set("x-rally-api-key-id", entry.id);
    headers.set("x-rally-scopes", entry.scopes);
    return fetch(env.ORIGIN_URL + url.pathname + url.search, { method: request.method, headers, body: request.body });
  },
};
