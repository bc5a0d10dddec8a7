// Case js-floor: the JavaScript floor, the same forward as case js-minimal with no key, no hash
// and no KV read. js-minimal against js-floor is what the SHA-256 and the KV read cost a Worker
// on this set-up, which bounds how close any Worker that reads KV can come to its own floor.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const headers = new Headers(request.headers);
    headers.delete("x-api-key");
    return fetch(env.ORIGIN_URL + url.pathname + url.search, { method: request.method, headers, body: request.body });
  },
};
