// API keys for the /ui page. When the server has LOGPROBS_API_KEYS set, its API answers 401
// without a key. This wraps fetch() for same-origin calls: it sends the key kept for this tab
// (sessionStorage, as X-API-Key), and on a 401 asks for the key once and retries the call.
// A session cookie from /login works too: same-origin fetches carry it by themselves.
(() => {
  const STORE = "langserve-logprobs-api-key";
  const plainFetch = window.fetch.bind(window);
  const sameOrigin = (input) => {
    const url = new URL(input instanceof Request ? input.url : String(input), location.href);
    return url.origin === location.origin;
  };
  const withKey = (init, key) => {
    const headers = new Headers((init && init.headers) || {});
    if (key) headers.set("X-API-Key", key);
    return { ...(init || {}), headers };
  };
  window.fetch = async (input, init) => {
    if (!sameOrigin(input)) return plainFetch(input, init);
    const response = await plainFetch(input, withKey(init, sessionStorage.getItem(STORE)));
    if (response.status !== 401) return response;
    const key = window.prompt("This server needs an API key (kept for this tab only):");
    if (!key) return response;
    sessionStorage.setItem(STORE, key.trim());
    return plainFetch(input, withKey(init, key.trim()));
  };
})();
