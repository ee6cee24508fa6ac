// One guest's serial console in the browser: xterm.js over the controller's fan-out.
import { Terminal } from "/assets/xterm/lib/xterm.mjs";
import { FitAddon } from "/assets/xterm-addon-fit/lib/addon-fit.mjs";
import { api, Backoff, guestFromPath, running, sessionOrLogin, sleep, wsUrl } from "./common.js";

const name = guestFromPath();
const $ = (id) => document.getElementById(id);
const backoff = new Backoff();
const encoder = new TextEncoder();
let socket = null;
let leaving = false;

document.title = `${name}: serial console`;
$("title").textContent = `${name} (serial)`;
$("console-link").href = `/console/${encodeURIComponent(name)}`;

const term = new Terminal({ convertEol: true, scrollback: 5000, cursorBlink: true });
const fit = new FitAddon();
term.loadAddon(fit);
term.open($("terminal"));
fit.fit();
window.addEventListener("resize", () => fit.fit());

function status(text) {
  $("status").textContent = text;
  document.body.dataset.status = text;
}

function message(text) {
  $("message").hidden = !text;
  $("message-text").textContent = text ?? "";
}

async function connect() {
  let g;
  try {
    g = await api("GET", `/api/guests/${encodeURIComponent(name)}`);
  } catch (e) {
    message(e.message);
    return;
  }
  if (!running(g)) {
    status("not running");
    message(`${name} is not running (${g.state}).`);
    return;
  }
  let grant;
  try {
    grant = await api("POST", `/api/guests/${encodeURIComponent(name)}/serial`);
  } catch (e) {
    message(e.message);
    setTimeout(connect, backoff.take());
    return;
  }
  status("connecting");
  term.reset();
  socket = new WebSocket(wsUrl(grant.url));
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    backoff.reset();
    message(null);
    status(grant.read_only ? "connected (watching only)" : "connected");
  };
  socket.onmessage = (event) => term.write(new Uint8Array(event.data));
  socket.onclose = async () => {
    socket = null;
    if (leaving) return;
    status("disconnected");
    const wait = backoff.take();
    message(`The serial connection to ${name} dropped; reconnecting in ${Math.round(wait / 1000)} s…`);
    await sleep(wait);
    connect();
  };
}

const me = await sessionOrLogin();
if (me !== null) {
  if (me.may.type) {
    term.onData((data) => socket?.readyState === WebSocket.OPEN && socket.send(encoder.encode(data)));
  }
  window.addEventListener("pagehide", () => {
    leaving = true;
    socket?.close();
  });
  connect();
  term.focus();
}
