// The public API, as the shop calls it: JSON in and out, the error answer's
// message kept for the page, the access token refreshed once on a 401
// token_expired, and an order's status stream read with fetch (EventSource
// cannot send the Authorization header).

const SESSION = "mercato.session"; // {access_token, refresh_token, user}

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

let session = readSession();
let refreshing = null;
const listeners = new Set();

function readSession() {
  try {
    return JSON.parse(localStorage.getItem(SESSION)) || null;
  } catch {
    return null;
  }
}

function saveSession(s) {
  session = s;
  if (s) localStorage.setItem(SESSION, JSON.stringify(s));
  else {
    localStorage.removeItem(SESSION);
    forgetTrade();
  }
  for (const fn of listeners) fn(s);
}

// Another tab signed in, refreshed or signed out.
addEventListener("storage", (e) => {
  if (e.key === SESSION) {
    session = readSession();
    for (const fn of listeners) fn(session);
  }
});

export function onSession(fn) { listeners.add(fn); }
export function user() { return session?.user ?? null; }
export function isAdmin() { return session?.user?.role === "admin"; }

async function errorOf(resp) {
  let body = null;
  try { body = await resp.json(); } catch { /* not JSON */ }
  const e = body?.error;
  const err = new ApiError(resp.status, e?.code ?? `http_${resp.status}`,
    e?.message ?? `the server answered ${resp.status} ${resp.statusText}`, e?.details);
  // 429 and 503 say when to try again (seconds).
  const after = Number(resp.headers.get("Retry-After"));
  if (after > 0) err.retryAfter = after;
  return err;
}

async function send(method, path, body, token, headers = {}) {
  const h = { Accept: "application/json", ...headers };
  if (body !== undefined) h["Content-Type"] = "application/json";
  if (token) h.Authorization = `Bearer ${token}`;
  let resp;
  try {
    resp = await fetch(`/api/v1${path}`, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, "network_error", `the shop could not reach the server (${err.message})`);
  }
  if (!resp.ok) throw await errorOf(resp);
  if (resp.status === 204) return null;
  return resp.json();
}

// api calls the API; with auth, as the signed-in user, refreshing the
// access token once when it has expired.
export async function api(method, path, body, { auth = false, headers } = {}) {
  if (!auth) return send(method, path, body, null, headers);
  if (!session) throw new ApiError(401, "unauthenticated", "please log in first");
  const used = session.access_token;
  try {
    return await send(method, path, body, used, headers);
  } catch (e) {
    if (e.status !== 401 || e.code !== "token_expired") throw e;
    if (session?.access_token === used) await refresh();
    return send(method, path, body, session.access_token, headers);
  }
}

// refresh trades the refresh token for a new pair, once for every caller
// that needs it at the same time, in every tab: the user service takes a
// second use of a refresh token for a stolen one and ends the session, so
// tabs refresh one at a time (a Web Lock), and a tab whose token another
// tab traded meanwhile takes that tab's pair. A refused refresh ends the
// session.
export function refresh() {
  if (!session) return Promise.reject(new ApiError(401, "unauthenticated", "please log in again"));
  const used = session.refresh_token;
  refreshing ??= (async () => {
    try {
      await oneTabAtATime("mercato.refresh", async () => {
        const stored = readSession();
        if (!stored) throw new ApiError(401, "unauthenticated", "please log in again");
        const traded = await lastTrade();
        if (traded?.used === used) {
          saveSession({ ...stored, access_token: traded.access_token, refresh_token: traded.refresh_token });
          return;
        }
        if (stored.refresh_token !== used) {
          saveSession(stored);
          return;
        }
        const t = await send("POST", "/auth/refresh", { refresh_token: used });
        await recordTrade({ used, access_token: t.access_token, refresh_token: t.refresh_token });
        saveSession({ ...stored, access_token: t.access_token, refresh_token: t.refresh_token });
      });
    } catch (e) {
      if (e.status === 401) saveSession(null);
      throw e;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

// oneTabAtATime runs fn holding the lock name in every tab of the shop;
// where Web Locks are missing (an insecure origin), it runs it at once.
function oneTabAtATime(name, fn) {
  return navigator.locks ? navigator.locks.request(name, fn) : fn();
}

// The last refresh's trade, {used, access_token, refresh_token}, is kept in
// IndexedDB for the tab that takes the lock next. localStorage would not do:
// another tab may read its old value for a moment after the write (Chromium
// passes the change on asynchronously), and so send the traded token again.
// An IndexedDB transaction begun after another's commit sees what it wrote.
// Without IndexedDB, localStorage alone decides.
const TRADES = "mercato", TRADE = "refresh";

function trades(mode, fn) {
  return new Promise((resolve) => {
    let open;
    try {
      open = indexedDB.open(TRADES, 1);
    } catch {
      return resolve(null);
    }
    open.onupgradeneeded = () => open.result.createObjectStore(TRADE);
    open.onerror = () => resolve(null);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction(TRADE, mode);
      const req = fn(tx.objectStore(TRADE));
      tx.oncomplete = () => { db.close(); resolve(req.result ?? null); };
      tx.onerror = tx.onabort = () => { db.close(); resolve(null); };
    };
  });
}

const lastTrade = () => trades("readonly", (s) => s.get(TRADE));
const recordTrade = (t) => trades("readwrite", (s) => s.put(t, TRADE));
const forgetTrade = () => trades("readwrite", (s) => s.delete(TRADE));

export async function login(email, password) {
  const t = await send("POST", "/auth/login", { email, password });
  const me = await send("GET", "/users/me", undefined, t.access_token);
  saveSession({ access_token: t.access_token, refresh_token: t.refresh_token, user: me.user });
  return me.user;
}

export async function logout() {
  if (!session) return;
  try {
    await api("POST", "/auth/logout", { refresh_token: session.refresh_token }, { auth: true });
  } catch (e) {
    // Ended already (revoked, expired): forget it. Anything else (503: the
    // revocation was not recorded) is the user's to know and retry.
    if (e.status !== 401) throw e;
  }
  saveSession(null);
}

// watchOrder follows an order's status stream (GET /orders/{id}/events),
// calling onStatus with each status event's data and onState with "live",
// "reconnecting" or "stopped" (and the error). It reconnects after the
// server's retry delay (or its Retry-After, when it refused the stream
// with one), resuming after the last event id, with a fresh token when the
// old one expired. The returned function stops it.
export function watchOrder(id, onStatus, onState) {
  let lastId = null, delay = 2000, stopped = false, ctrl = null;
  (async () => {
    while (!stopped) {
      ctrl = new AbortController();
      let wait = delay;
      try {
        if (!session) throw new ApiError(401, "unauthenticated", "please log in again");
        const headers = { Accept: "text/event-stream", Authorization: `Bearer ${session.access_token}` };
        if (lastId !== null) headers["Last-Event-ID"] = lastId;
        const resp = await fetch(`/api/v1/orders/${encodeURIComponent(id)}/events`, { headers, signal: ctrl.signal, cache: "no-store" });
        if (!resp.ok) {
          const e = await errorOf(resp);
          if (e.status === 401 && e.code === "token_expired") { await refresh(); continue; }
          throw e;
        }
        onState("live");
        await readEvents(resp.body, (ev) => {
          if (ev.retry) delay = ev.retry;
          if (ev.id !== undefined) lastId = ev.id;
          if (ev.event === "status" && ev.data) onStatus(JSON.parse(ev.data));
        });
        if (!stopped) onState("reconnecting");
      } catch (e) {
        if (stopped) return;
        // Not found, not allowed, signed out: retrying cannot help.
        if (e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 429 && e.status !== 408) {
          onState("stopped", e);
          return;
        }
        if (e instanceof ApiError && e.retryAfter) wait = Math.max(delay, e.retryAfter * 1000);
        onState("reconnecting", e);
      }
      await new Promise((r) => setTimeout(r, wait));
    }
  })();
  return () => { stopped = true; ctrl?.abort(); };
}

// readEvents parses a text/event-stream body (the WHATWG format: fields
// data, id, event, retry; comment lines start with ":"; a blank line ends
// an event) and calls dispatch per event.
async function readEvents(body, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "", ev = { data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let m;
    while ((m = /\r\n|\r(?!$)|\n/.exec(buf))) {
      const line = buf.slice(0, m.index);
      buf = buf.slice(m.index + m[0].length);
      if (line === "") {
        if (ev.data.length || ev.id !== undefined) dispatch({ ...ev, data: ev.data.join("\n") });
        ev = { data: [] };
        continue;
      }
      if (line.startsWith(":")) continue; // a heartbeat
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let v = colon < 0 ? "" : line.slice(colon + 1);
      if (v.startsWith(" ")) v = v.slice(1);
      if (field === "data") ev.data.push(v);
      else if (field === "id") ev.id = v;
      else if (field === "event") ev.event = v;
      else if (field === "retry" && /^\d+$/.test(v)) dispatch({ retry: Number(v), data: "" });
    }
  }
}

// newKey is an Idempotency-Key (crypto.randomUUID needs a secure context;
// getRandomValues does not).
export function newKey() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}
