// Text to key presses for "paste as keystrokes": the guest sees a US keyboard,
// which is what a guest with no clipboard agent expects at a login prompt.
// Each entry is [KeyboardEvent.code, shift?]; the keysym is the character's own.

const SHIFTED = '~!@#$%^&*()_+{}|:"<>?';
const UNSHIFTED = "`1234567890-=[]\\;',./";
const CODES = {
  "`": "Backquote", "-": "Minus", "=": "Equal", "[": "BracketLeft", "]": "BracketRight",
  "\\": "Backslash", ";": "Semicolon", "'": "Quote", ",": "Comma", ".": "Period", "/": "Slash",
  " ": "Space",
};

export const XK = {
  Return: 0xff0d, Tab: 0xff09, BackSpace: 0xff08, Escape: 0xff1b,
  Shift_L: 0xffe1, Control_L: 0xffe3, Alt_L: 0xffe9, Delete: 0xffff, F1: 0xffbe,
};

// [keysym, code, shift] for one character, or null when a US keyboard has no key for it.
export function keyFor(ch) {
  if (ch === "\n") return [XK.Return, "Enter", false];
  if (ch === "\t") return [XK.Tab, "Tab", false];
  if (/^[a-z]$/.test(ch)) return [ch.charCodeAt(0), `Key${ch.toUpperCase()}`, false];
  if (/^[A-Z]$/.test(ch)) return [ch.charCodeAt(0), `Key${ch}`, true];
  if (/^[0-9]$/.test(ch)) return [ch.charCodeAt(0), `Digit${ch}`, false];
  if (ch in CODES) return [ch.charCodeAt(0), CODES[ch], false];
  const i = SHIFTED.indexOf(ch);
  if (i >= 0) {
    const base = UNSHIFTED[i];
    const code = /[0-9]/.test(base) ? `Digit${base}` : CODES[base];
    return [ch.charCodeAt(0), code, true];
  }
  return null;
}

// Types text into a noVNC RFB connection; returns the characters it had to skip.
export async function typeText(rfb, text, pause = 15) {
  const skipped = [];
  for (const ch of text.replace(/\r\n?/g, "\n")) {
    const key = keyFor(ch);
    if (key === null) {
      skipped.push(ch);
      continue;
    }
    const [keysym, code, shift] = key;
    if (shift) rfb.sendKey(XK.Shift_L, "ShiftLeft", true);
    rfb.sendKey(keysym, code, true);
    rfb.sendKey(keysym, code, false);
    if (shift) rfb.sendKey(XK.Shift_L, "ShiftLeft", false);
    // A guest's keyboard buffer is small; a short pause keeps it from overflowing.
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
  return skipped;
}

// Ctrl-Alt-Fn: switch the guest's virtual terminal.
export function sendCtrlAltF(rfb, n) {
  rfb.sendKey(XK.Control_L, "ControlLeft", true);
  rfb.sendKey(XK.Alt_L, "AltLeft", true);
  rfb.sendKey(XK.F1 + n - 1, `F${n}`, true);
  rfb.sendKey(XK.F1 + n - 1, `F${n}`, false);
  rfb.sendKey(XK.Alt_L, "AltLeft", false);
  rfb.sendKey(XK.Control_L, "ControlLeft", false);
}
