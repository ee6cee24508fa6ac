// One guest's screen in the browser: noVNC over the controller's WebSocket proxy.
import RFB from "/assets/novnc/core/rfb.js";
import { api, Backoff, guestFromPath, running, sessionOrLogin, sleep, wsUrl } from "./common.js";
import { sendCtrlAltF, typeText } from "./keys.js";

const name = guestFromPath();
const $ = (id) => document.getElementById(id);
const backoff = new Backoff();
let me = null;
let rfb = null;
let leaving = false;
let connects = 0;

document.title = `${name}: console`;
$("title").textContent = name;
$("serial-link").href = `/serial/${encodeURIComponent(name)}`;

function status(text) {
  $("status").textContent = text;
  document.body.dataset.status = text;
}

function message(text, { startButton = false } = {}) {
  $("message").hidden = !text;
  $("message-text").textContent = text ?? "";
  $("start").hidden = !(startButton && me?.may.start);
}

async function guest() {
  return api("GET", `/api/guests/${encodeURIComponent(name)}`);
}

function applyScale() {
  if (rfb === null) return;
  const fit = $("scale").value === "fit";
  rfb.scaleViewport = fit;
  rfb.clipViewport = !fit;
}

async function connect() {
  let g;
  try {
    g = await guest();
  } catch (e) {
    status("error");
    message(e.message);
    return;
  }
  if (!running(g)) {
    status("not running");
    message(`${name} is not running (${g.state}).`, { startButton: true });
    return;
  }
  let grant;
  try {
    grant = await api("POST", `/api/guests/${encodeURIComponent(name)}/console`);
  } catch (e) {
    // Running under SMF but not yet attached by the controller: try again soon.
    status("waiting");
    message(e.message);
    setTimeout(connect, backoff.take());
    return;
  }
  status("connecting");
  // A password comes only for the illumos fork's display: one-time, for this connection.
  const credentials = grant.password ? { password: grant.password } : undefined;
  rfb = new RFB($("screen"), wsUrl(grant.url), { shared: true, credentials });
  rfb.viewOnly = Boolean(grant.view_only);
  rfb.focusOnClick = true;
  applyScale();
  rfb.addEventListener("connect", () => {
    backoff.reset();
    document.body.dataset.connects = String(++connects);
    message(null);
    status(rfb.viewOnly ? "connected (view only)" : "connected");
    rfb.focus();
  });
  rfb.addEventListener("disconnect", onDisconnect);
  rfb.addEventListener("credentialsrequired", () => {
    // A guest with a VNC password of its own (vm.json vnc.password) on the illumos fork.
    const password = prompt(`${name}'s VNC password (vnc.password in its vm.json):`);
    if (password === null) rfb.disconnect();
    else rfb.sendCredentials({ password });
  });
  rfb.addEventListener("securityfailure", (e) => message(`${name}: the VNC server refused: ${e.detail.reason ?? e.detail.status}`));
}

async function onDisconnect() {
  rfb = null;
  if (leaving) return;
  status("disconnected");
  let g = null;
  try {
    g = await guest();
  } catch {
    // the controller itself may be restarting: keep trying
  }
  if (g !== null && !running(g)) {
    status("not running");
    message(`${name} stopped (${g.state}).`, { startButton: true });
    return;
  }
  const wait = backoff.take();
  message(`The connection to ${name} dropped; reconnecting in ${Math.round(wait / 1000)} s…`);
  await sleep(wait);
  connect();
}

$("scale").addEventListener("change", applyScale);

for (let n = 1; n <= 12; n++) {
  const o = document.createElement("option");
  o.value = `ctrl-alt-f${n}`;
  o.textContent = `Ctrl-Alt-F${n}`;
  $("keys").append(o);
}
$("keys").addEventListener("change", (event) => {
  const v = event.target.value;
  event.target.value = "";
  if (rfb === null || rfb.viewOnly || !v) return;
  if (v === "ctrl-alt-del") rfb.sendCtrlAltDel();
  else sendCtrlAltF(rfb, Number(v.slice("ctrl-alt-f".length)));
  rfb.focus();
});

$("paste-open").addEventListener("click", () => {
  $("paste").hidden = false;
  $("paste-text").focus();
});
$("paste-close").addEventListener("click", () => {
  $("paste").hidden = true;
  rfb?.focus();
});
$("paste-send").addEventListener("click", async () => {
  if (rfb === null || rfb.viewOnly) return;
  const skipped = await typeText(rfb, $("paste-text").value);
  message(skipped.length ? `Not typed (no such key on a US keyboard): ${[...new Set(skipped)].join(" ")}` : null);
  rfb.focus();
});

// Where a desktop VNC viewer connects, how that display is protected, and its password.
$("display-open").addEventListener("click", async () => {
  let text;
  try {
    const d = await api("GET", `/api/guests/${encodeURIComponent(name)}/display`);
    const where = `${location.hostname}:${d.port} (display :${d.display})`;
    text = `Desktop viewer: ${where}; ${d.protection}.`;
    if (d.password) text += ` Password: ${d.password}`;
  } catch (e) {
    text = e.message;
  }
  $("display-text").textContent = text;
  $("display").hidden = false;
});
$("display-close").addEventListener("click", () => {
  $("display").hidden = true;
  rfb?.focus();
});

$("fullscreen").addEventListener("click", () => {
  if (document.fullscreenElement) document.exitFullscreen();
  else $("screen").requestFullscreen();
});

$("start").addEventListener("click", async () => {
  try {
    await api("POST", `/api/guests/${encodeURIComponent(name)}/start`);
  } catch (e) {
    message(e.message, { startButton: true });
    return;
  }
  message(`Starting ${name}…`);
  backoff.reset();
  for (let i = 0; i < 120; i++) {
    await sleep(1000);
    const g = await guest().catch(() => null);
    if (g !== null && running(g)) break;
  }
  connect();
});

window.addEventListener("pagehide", () => {
  leaving = true;
  rfb?.disconnect();
});

me = await sessionOrLogin();
if (me !== null) {
  for (const id of ["keys", "paste-open"]) $(id).hidden = !me.may.type;
  $("serial-link").hidden = !me.may.serial;
  $("display-open").hidden = !me.may.display;
  connect();
}
