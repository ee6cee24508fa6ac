// The guest list: state, size, display and a live thumbnail of each running guest.
import { api, ApiError, element, login, logout, running, session } from "./common.js";

const REFRESH_MS = 5000;
const ACTIONS = [
  // [verb, label, shown when running?, asks first]
  ["start", "Start", false, false],
  ["stop", "Stop", true, false],
  ["poweroff", "Force off", true, true],
  ["reset", "Reset", true, true],
];

let me = null;
let timer = null;

function show(id, on) {
  document.getElementById(id).hidden = !on;
}

function notice(line) {
  const p = document.getElementById("notice");
  p.textContent = line ?? "";
  p.hidden = !line;
}

function displayText(guest) {
  if (guest.display === null || guest.display === undefined) return "no display";
  const listen = me.display_listen;
  const host = listen === "0.0.0.0" || listen === "::" ? location.hostname : listen;
  return `${host}:${guest.vnc_port} (display :${guest.display})`;
}

async function act(guest, verb, label, asks) {
  if (asks && !confirm(`${label} ${guest.name}? The guest is not asked first.`)) return;
  try {
    await api("POST", `/api/guests/${encodeURIComponent(guest.name)}/${verb}`);
    notice(null);
  } catch (e) {
    notice(e.message);
  }
  refresh();
}

// One <img> per guest, kept across refreshes; a new picture is fetched as a blob
// and swapped in once it is whole, so the old one never blinks.
const thumbnails = new Map();

async function loadThumbnail(name, img) {
  try {
    const response = await fetch(`/api/guests/${encodeURIComponent(name)}/thumbnail`, { credentials: "same-origin" });
    if (!response.ok) return;
    const url = URL.createObjectURL(await response.blob());
    const old = img.src;
    img.src = url;
    img.dataset.loaded = String(Date.now());
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  } catch {
    // the next refresh tries again
  }
}

function thumbnail(guest) {
  const on = running(guest) && guest.controller?.attached;
  const box = element("div", { class: "thumb" });
  if (on) {
    let img = thumbnails.get(guest.name);
    if (img === undefined) {
      img = element("img", { alt: `${guest.name}'s screen` });
      thumbnails.set(guest.name, img);
    }
    loadThumbnail(guest.name, img);
    box.append(img);
  } else {
    thumbnails.delete(guest.name);
    box.append(element("span", { class: "off" }, running(guest) ? "starting…" : guest.state));
  }
  if (me.may.console && on) {
    return element("a", { href: `/console/${encodeURIComponent(guest.name)}`, title: "Open the console" }, box);
  }
  return box;
}

function card(guest) {
  const state = guest.next_state ? `${guest.state} → ${guest.next_state}` : guest.state;
  const facts = element(
    "dl",
    {},
    element("dt", {}, "state"),
    element("dd", { class: `state state-${guest.state}` }, state),
    element("dt", {}, "vCPUs"),
    element("dd", {}, String(guest.vcpus ?? "?")),
    element("dt", {}, "RAM"),
    element("dd", {}, guest.ram ?? "?"),
    element("dt", {}, "display"),
    element("dd", {}, displayText(guest)),
  );
  const buttons = element("div", { class: "actions" });
  for (const [verb, label, whenRunning, asks] of ACTIONS) {
    if (!me.may[verb] || running(guest) !== whenRunning) continue;
    buttons.append(element("button", { "data-action": verb, onclick: () => act(guest, verb, label, asks) }, label));
  }
  if (me.may.serial && running(guest)) {
    buttons.append(element("a", { href: `/serial/${encodeURIComponent(guest.name)}` }, "Serial"));
  }
  return element(
    "article",
    { class: "guest", "data-guest": guest.name, "data-state": guest.state },
    element("h2", {}, guest.name),
    thumbnail(guest),
    facts,
    buttons,
  );
}

async function refresh() {
  clearTimeout(timer);
  timer = null;
  if (document.visibilityState !== "visible") return;
  try {
    const [guests, problems] = await Promise.all([api("GET", "/api/guests"), api("GET", "/api/problems")]);
    const section = document.getElementById("guests");
    section.replaceChildren(...guests.map(card));
    if (guests.length === 0) section.append(element("p", {}, "No guests yet: vmbundle create NAME, or zfs recv a bundle into a bundle root."));
    const list = document.querySelector("#problems ul");
    list.replaceChildren(
      ...problems.map((p) => element("li", {}, element("code", {}, p.where), ": ", p.lines.join("; "))),
    );
    show("problems", problems.length > 0);
    show("guests", true);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      showLogin();
      return;
    }
    notice(`the controller did not answer: ${e.message}`);
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

function showLogin() {
  me = null;
  clearTimeout(timer);
  show("login", true);
  show("guests", false);
  show("problems", false);
  show("logout", false);
  document.getElementById("who").textContent = "";
  document.querySelector("#login input[name=user]").focus();
}

function loggedIn(who) {
  me = who;
  const next = new URLSearchParams(location.search).get("next");
  // Only a path of this console, never another site.
  if (next && /^\/(console|serial)\/[a-z0-9][a-z0-9._-]*$/i.test(next)) {
    location.assign(next);
    return;
  }
  show("login", false);
  show("logout", true);
  document.getElementById("who").textContent = `${me.user} (${me.role})`;
  refresh();
}

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const error = document.getElementById("login-error");
  error.textContent = "";
  try {
    loggedIn(await login(form.user.value, form.password.value));
    form.password.value = "";
  } catch (e) {
    error.textContent = e.message;
  }
});

document.getElementById("logout").addEventListener("click", async () => {
  await logout();
  showLogin();
});

// Thumbnails cost the host a screendump each: none while nobody looks.
document.addEventListener("visibilitychange", () => {
  if (me !== null && document.visibilityState === "visible") refresh();
});

document.getElementById("host").textContent = location.host;
const who = await session();
if (who === null) showLogin();
else loggedIn(who);
