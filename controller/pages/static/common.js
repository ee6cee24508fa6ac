// What every page of the web console shares: the session, the JSON API, messages.

let csrf = null;

export class ApiError extends Error {
  constructor(status, line) {
    super(line);
    this.status = status;
  }
}

// One call of the JSON API. Every POST carries the session's CSRF token.
export async function api(method, path, body) {
  const headers = {};
  if (method !== "GET") headers["X-CSRF-Token"] = csrf ?? "";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const type = response.headers.get("Content-Type") ?? "";
  const doc = type.startsWith("application/json") ? await response.json() : null;
  if (!response.ok) {
    throw new ApiError(response.status, doc?.error ?? `${method} ${path}: HTTP ${response.status}`);
  }
  return doc;
}

// Who is logged in, or null.
export async function session() {
  const me = await api("GET", "/api/session");
  if (me.user === null) return null;
  csrf = me.csrf;
  return me;
}

export async function login(user, password) {
  const me = await api("POST", "/api/login", { user, password });
  csrf = me.csrf;
  return session();
}

export async function logout() {
  await api("POST", "/api/logout");
  csrf = null;
}

// The guest a /console/NAME or /serial/NAME page is for.
export function guestFromPath() {
  return decodeURIComponent(location.pathname.split("/")[2] ?? "");
}

// A page that needs a session sends a visitor without one to the login, and back.
export async function sessionOrLogin() {
  const me = await session();
  if (me === null) location.assign(`/?next=${encodeURIComponent(location.pathname)}`);
  return me;
}

export function wsUrl(path) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

export function running(guest) {
  return guest.state === "online" || guest.state === "degraded";
}

// Waits that double up to a cap, for reconnecting to a guest that still runs.
export class Backoff {
  constructor(first = 500, cap = 10000) {
    this.first = first;
    this.cap = cap;
    this.next = first;
  }
  take() {
    const wait = this.next;
    this.next = Math.min(this.next * 2, this.cap);
    return wait;
  }
  reset() {
    this.next = this.first;
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function element(tag, attributes = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attributes)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}
