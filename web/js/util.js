// Small DOM and formatting helpers shared by every page.

/**
 * Build an element: h('div', {class: 'x', onclick: fn, 'data-testid': 'y'}, child, 'text', …).
 * Attributes: `class`, `html` (trusted markup only: our own SVG icons), `on*` handlers,
 * boolean `true`/`false`, anything else via setAttribute. `null`/`undefined` are skipped.
 */
export function h(tag, attrs, ...children) {
  const el = tag.includes(':')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.split(':')[1])
    : document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'html') el.innerHTML = v;
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = v;
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace an element's children. */
export function setChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

export const MIN = 60_000;
export const HOUR = 3_600_000;
export const DAY = 86_400_000;

const pad = (n) => String(n).padStart(2, '0');

/** `YYYY-MM-DD` of a Date in local time. */
export function dayStr(d = new Date()) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

export function isDayStr(s) {
  return typeof s === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(s) && !Number.isNaN(parseDay(s).getTime());
}

/** Local midnight of `YYYY-MM-DD`. */
export function parseDay(s) {
  const [y, m, d] = s.split('-').map(Number);
  return new Date(y, m - 1, d);
}

export function addDays(s, n) {
  const d = parseDay(s);
  d.setDate(d.getDate() + n);
  return dayStr(d);
}

/** A local day as [start, end) in epoch ms (23 or 25 h long on DST days). */
export function dayBounds(s) {
  const start = parseDay(s);
  const end = new Date(start);
  end.setDate(end.getDate() + 1);
  return { start: start.getTime(), end: end.getTime() };
}

/** `datetime-local` input value for epoch ms. */
export function localInputValue(ms) {
  const d = new Date(ms);
  return `${dayStr(d)}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export const iso = (ms) => new Date(ms).toISOString();

// Times of day always come from Intl in the browser's locale (12 or 24 h, its own separators),
// never hand-built; `hour: 'numeric'` keeps "6:05 AM" and "06:05" each locale's own way.
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit', second: '2-digit' });
const hmFmt = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long' });
const dayYearFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric', hour: 'numeric', minute: '2-digit' });
const dateTimeSameYearFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', hour: 'numeric', minute: '2-digit' });

const hourCycle = new Intl.DateTimeFormat(undefined, { hour: 'numeric' }).resolvedOptions().hourCycle;
/** Whether this browser's locale writes times on a 12-hour clock. */
export const twelveHour = hourCycle === 'h11' || hourCycle === 'h12';

/** The playhead clock, hover labels and clip start times: "12:28:04 PM" / "12:28:04". */
export const fmtTime = (ms) => timeFmt.format(ms);

// Timeline tick labels: one formatter per zoom level, chosen by the label step. Whole hours
// are "6 AM" on a 12-hour clock; 24-hour locales keep the minutes ("06:00"), as a lone "06"
// reads as nothing in particular. Finer steps always show minutes.
const tickHourFmt = new Intl.DateTimeFormat(undefined, twelveHour ? { hour: 'numeric' } : { hour: 'numeric', minute: '2-digit' });
const tickMinuteFmt = hmFmt;
// The end of a day view: "24:00" where the clock runs 0–23, rather than a second "00:00".
const tickEndFmt = twelveHour ? null : new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit', hourCycle: 'h24' });

/**
 * The formatter for timeline ticks `stepMs` apart: `{format(ms), formatEnd(ms)}`, where
 * `formatEnd` labels a tick at the very end of the day.
 */
export function tickFormatter(stepMs) {
  const fmt = stepMs % HOUR === 0 ? tickHourFmt : tickMinuteFmt;
  return {
    key: fmt === tickHourFmt ? 'hour' : 'minute',
    format: (ms) => fmt.format(ms),
    formatEnd: (ms) => (tickEndFmt && new Date(ms).getHours() === 0 && new Date(ms).getMinutes() === 0 ? tickEndFmt.format(ms) : fmt.format(ms)),
  };
}
export const fmtHM = (ms) => hmFmt.format(ms);
export const fmtDateTime = (ms) => dateTimeFmt.format(ms);

/** "12:18 today", "9:40 PM yesterday", "3 Nov, 08:00" — when something began. */
export function fmtSince(ms) {
  const d = new Date(ms);
  const s = dayStr(d);
  const today = dayStr();
  if (s === today) return `${fmtHM(ms)} today`;
  if (s === addDays(today, -1)) return `${fmtHM(ms)} yesterday`;
  return d.getFullYear() === new Date().getFullYear() ? dateTimeSameYearFmt.format(d) : dateTimeFmt.format(d);
}

/** "Today", "Yesterday" or "Monday 23 November". */
export function fmtDay(s) {
  const today = dayStr();
  if (s === today) return 'Today';
  if (s === addDays(today, -1)) return 'Yesterday';
  const d = parseDay(s);
  return d.getFullYear() === new Date().getFullYear() ? dayFmt.format(d) : dayYearFmt.format(d);
}

/** "just now", "5 min ago", "3 h ago", else a date. */
export function fmtAgo(ms) {
  const diff = Date.now() - ms;
  if (diff < 45_000) return 'just now';
  if (diff < HOUR) return `${Math.round(diff / MIN)} min ago`;
  if (diff < DAY) return `${Math.round(diff / HOUR)} h ago`;
  return fmtDateTime(ms);
}

/** Decimal units, like the config file (`200GB`). */
export function fmtBytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

const oneDecimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const noDecimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

/** A camera's measured bitrate (`bitrate_bps`): "188 kbit/s", "2.4 Mbit/s"; null when unknown/0. */
export function fmtBitrate(bps) {
  if (!bps || !Number.isFinite(bps)) return null;
  const kbps = Math.round(bps / 1e3);
  if (kbps < 1000) return `${noDecimal.format(kbps)} kbit/s`;
  return `${oneDecimal.format(bps / 1e6)} Mbit/s`;
}

/** A camera's measured frame rate (`fps`), at most one decimal: "24.6 fps", "25 fps"; null when 0. */
export function fmtFps(fps) {
  if (!fps || !Number.isFinite(fps)) return null;
  return `${oneDecimal.format(fps)} fps`;
}

/** Seconds → "42 s", "3 min 05 s", "2 h 10 min". */
export function fmtDuration(sec) {
  sec = Math.max(0, Math.round(sec));
  if (sec < 60) return `${sec} s`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min${sec % 60 ? ` ${pad(sec % 60)} s` : ''}`;
  const m = Math.floor(sec / 60);
  return `${Math.floor(m / 60)} h${m % 60 ? ` ${pad(m % 60)} min` : ''}`;
}

/** Seconds → "1:05" / "1:02:05", for clip-relative clocks. */
export function fmtClock(sec) {
  sec = Math.max(0, Math.floor(sec));
  const h = Math.floor(sec / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = sec % 60;
  return h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

/** RFC 6381 codec → what people call it. */
export function codecName(codec) {
  if (!codec) return null;
  const c = codec.toLowerCase();
  if (c.startsWith('avc') || c === 'h264') return 'H.264';
  if (c.startsWith('hvc') || c.startsWith('hev') || c === 'h265' || c === 'hevc') return 'H.265';
  if (c.startsWith('av01')) return 'AV1';
  if (c.startsWith('vp09')) return 'VP9';
  return codec;
}

export function fmtResolution(w, h) {
  if (!w || !h) return null;
  const named = { 2160: '4K', 1440: '1440p', 1080: '1080p', 720: '720p', 480: '480p', 360: '360p' };
  return named[h] && w > h ? `${named[h]}` : `${w}×${h}`;
}

/** Parse an API time (RFC 3339) to ms, or null. */
export function parseTime(t) {
  if (!t) return null;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? null : ms;
}

/** Hash-route helpers: update the query of the current route without re-rendering. */
export function replaceQuery(params) {
  const [path] = location.hash.slice(1).split('?');
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') q.set(k, v);
  const s = q.toString();
  history.replaceState(history.state, '', `#${path || '/'}${s ? `?${s}` : ''}`);
}

export const cameraHref = (name) => `#/camera/${encodeURIComponent(name)}`;
export const timelineHref = (name, day, t) => {
  const q = new URLSearchParams();
  if (day) q.set('day', day);
  if (t) q.set('t', t);
  const s = q.toString();
  return `${cameraHref(name)}/timeline${s ? `?${s}` : ''}`;
};

/** HH:MM:SS (local) of epoch ms, for `t=` in timeline links. */
export function clockStr(ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}

/** A spinner with a label, for loading states. */
export function loading(label = 'Loading…') {
  return h('div', { class: 'state state-loading', role: 'status', 'data-testid': 'loading' },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }), h('span', null, label));
}

/** Repeating timer that stops itself once cancelled; runs `fn` now and every `ms`. */
export function every(ms, fn, { now = true } = {}) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try { await fn(); } catch (e) { console.error(e); }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  if (now) tick(); else timer = setTimeout(tick, ms);
  return () => { stopped = true; clearTimeout(timer); };
}
