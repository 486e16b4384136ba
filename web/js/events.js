// Events (motion, doorbell presses, other webhooks): how they are labelled and drawn, where
// clicking one leads, and the live feed of the open page (`GET /api/events/stream`, server-sent
// events) with its in-page toasts and, when the user has allowed them, browser notifications.
// The hub sends only the events of cameras this account may see.

import { api, apiUrl, auth } from './api.js';
import { h, fmtTime, fmtDuration, dayStr, timelineHref, cameraHref, setChildren } from './util.js';
import { icon } from './icons.js';
import { status, markLocked } from './lock.js';
import { may, recheckSession } from './session.js';

/** Playback of an event starts this long before it, so what led up to it is seen too. */
export const PRE_ROLL_MS = 5000;

const KIND_LABEL = { motion: 'Motion', doorbell: 'Doorbell' };
const KIND_ICON = { motion: 'motion', doorbell: 'bell' };

/** "Motion", "Doorbell", "Garage_door" → "Garage door". */
export function kindLabel(kind) {
  if (KIND_LABEL[kind]) return KIND_LABEL[kind];
  const s = String(kind || 'event').replace(/_+/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export const kindIcon = (kind) => KIND_ICON[kind] || 'alert';

/** A kind badge: icon and label. */
export function kindBadge(kind) {
  return h('span', { class: `ev-kind kind-${cssKind(kind)}`, 'data-testid': 'event-kind', 'data-kind': kind },
    h('span', { html: icon(kindIcon(kind)) }), kindLabel(kind));
}

/** Kinds are `[a-z0-9_]`; anything else is not used in a class name. */
export const cssKind = (kind) => (/^[a-z0-9_]{1,32}$/.test(kind || '') ? kind : 'other');

export const thumbnailUrl = (id) => apiUrl(`events/${encodeURIComponent(id)}/thumbnail.jpg`);

/** Where to play an event that started at `startMs`: its camera's timeline, pre-roll first. */
export function playHref(camera, startMs) {
  const t = Math.round(startMs - PRE_ROLL_MS);
  return timelineHref(camera, dayStr(new Date(t)), String(t));
}

/** Where clicking an event leads: its recording, else live view, else nowhere (null). */
export function eventHref(camera, startMs) {
  if (may(camera, 'playback')) return playHref(camera, startMs);
  if (may(camera, 'live')) return cameraHref(camera);
  return null;
}

/** "4 s", "1 min 05 s", or "ongoing" while it goes on. */
export function eventDuration(ev) {
  if (ev.end_us === null || ev.end_us === undefined) return 'ongoing';
  if (ev.end_us <= ev.start_us) return null; // an instant: a press has no duration
  return fmtDuration((ev.end_us - ev.start_us) / 1e6);
}

/**
 * An event's thumbnail, loaded lazily; a placeholder while playback is locked (thumbnails are
 * encrypted like clips), when there is none, or when it fails. `el.refresh()` redraws it (after
 * the lock state changed).
 */
export function eventThumbnail(ev, { lazy = true } = {}) {
  const el = h('div', { class: 'ev-thumb', 'data-testid': 'event-thumbnail' });
  const placeholder = (state, iconName, label) => {
    el.dataset.state = state;
    setChildren(el, h('span', { class: 'ev-thumb-ph', title: label, 'aria-label': label, role: 'img', html: icon(iconName) }));
  };
  el.refresh = () => {
    if (!ev.has_thumbnail) return placeholder('none', kindIcon(ev.kind), 'No picture');
    if (status.locked === true) return placeholder('locked', 'lock', 'Locked: unlock recordings to see the picture');
    if (el.dataset.state === 'loaded' || el.dataset.state === 'loading') return undefined;
    el.dataset.state = 'loading';
    const url = thumbnailUrl(ev.id);
    const img = h('img', { alt: `${kindLabel(ev.kind)} on ${ev.camera}`, loading: lazy ? 'lazy' : 'eager', decoding: 'async', width: '160', height: '90' });
    img.addEventListener('load', () => { el.dataset.state = 'loaded'; });
    img.addEventListener('error', async () => {
      const why = await whyNot(url);
      if (why === 423) {
        placeholder('locked', 'lock', 'Locked: unlock recordings to see the picture');
        markLocked();
      } else {
        placeholder('error', 'image', 'The picture could not be loaded');
      }
    });
    img.src = url;
    setChildren(el, img);
    return undefined;
  };
  el.refresh();
  return el;
}

/** The status of a failed GET (423 locked, 404 gone, 0 unreachable). */
async function whyNot(url) {
  try {
    const res = await fetch(url, { cache: 'no-store', credentials: 'same-origin' });
    res.body?.cancel?.().catch(() => {});
    return res.ok ? 200 : res.status;
  } catch {
    return 0;
  }
}

// ---------- the live feed ----------

const listeners = new Set();

/** Call `fn(notice)` for every notice `{id, camera, kind, phase, time_us, score}`; returns an unsubscribe. */
export function onNotice(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

const feed = { source: null, running: false, retries: 0, timer: null };

/** Tests and styles read the feed's state from `<html data-events-feed>`. */
function feedState(state) {
  document.documentElement.dataset.eventsFeed = state;
}

/** Starts listening (the app shows). */
export function startLiveEvents() {
  if (feed.running) return;
  feed.running = true;
  feed.retries = 0;
  connect();
}

/** Stops listening and clears the toasts (logged out, session ended, 2FA set-up). */
export function stopLiveEvents() {
  feed.running = false;
  clearTimeout(feed.timer);
  feed.source?.close();
  feed.source = null;
  feedState('closed');
  for (const t of [...toasts.values()]) t.remove();
}

function connect() {
  if (!feed.running) return;
  const generation = auth.generation;
  const source = new EventSource(apiUrl('events/stream'));
  feed.source = source;
  feedState('connecting');
  source.addEventListener('open', () => {
    feed.retries = 0;
    feedState('open');
  });
  source.addEventListener('event', (m) => {
    let notice;
    try { notice = JSON.parse(m.data); } catch { return; }
    if (!notice || typeof notice !== 'object') return;
    handle(notice);
  });
  source.addEventListener('error', () => {
    // Closed by the hub (the session ended, hearth restarted) or the network: after a backoff,
    // ask whether the session still stands (a 401 brings the login screen, which stops the
    // feed), then listen again. Waiting first also lets the page's own requests and live video
    // tell the reason of an ended session before this does.
    source.close();
    if (feed.source !== source) return;
    feed.source = null;
    feedState('retrying');
    if (!feed.running) return;
    const delay = Math.min(30_000, 1000 * 2 ** feed.retries) * (0.8 + Math.random() * 0.4);
    feed.retries = Math.min(feed.retries + 1, 6);
    clearTimeout(feed.timer);
    feed.timer = setTimeout(() => {
      recheckSession().finally(() => {
        if (feed.running && generation === auth.generation && !feed.source) connect();
      });
    }, delay);
  });
}

function handle(notice) {
  for (const fn of [...listeners]) {
    try { fn(notice); } catch (e) { console.error(e); }
  }
  if (notice.phase === 'start' || notice.phase === 'instant') announce(notice);
}

// ---------- toasts ----------

const toasts = new Map(); // event id → toast element
const MAX_TOASTS = 4;
let toastHost = null;

function host() {
  if (!toastHost || !toastHost.isConnected) {
    toastHost = h('div', { class: 'toasts', 'data-testid': 'toasts', 'aria-live': 'polite', 'aria-relevant': 'additions' });
    document.body.append(toastHost);
  }
  return toastHost;
}

async function announce(n) {
  if (toasts.has(n.id)) return;
  const doorbell = n.kind === 'doorbell';
  const startMs = n.time_us / 1000;
  const href = eventHref(n.camera, startMs);
  const title = doorbell ? `Someone rang at ${n.camera}` : `${kindLabel(n.kind)} on ${n.camera}`;
  const thumb = h('div', { class: 'ev-thumb toast-thumb', 'data-testid': 'event-thumbnail', 'data-state': 'loading' },
    h('span', { class: 'ev-thumb-ph', html: icon(kindIcon(n.kind)) }));
  const close = h('button', { type: 'button', class: 'btn-icon toast-close', 'aria-label': 'Dismiss', html: icon('close') });
  const body = h('div', { class: 'toast-body' },
    h('strong', { class: 'toast-title', 'data-testid': 'toast-title' }, title),
    h('span', { class: 'toast-meta muted small' }, kindBadge(n.kind), h('span', null, fmtTime(startMs))));
  const main = href
    ? h('a', { class: 'toast-main', href, 'data-testid': 'toast-play', title: may(n.camera, 'playback') ? 'Play the recording' : 'Watch live' }, thumb, body)
    : h('div', { class: 'toast-main' }, thumb, body);
  const el = h('div', {
    class: `toast ev-toast kind-${cssKind(n.kind)}${doorbell ? ' is-doorbell' : ''}`, 'data-testid': 'event-toast',
    'data-event-id': String(n.id), 'data-camera': n.camera, 'data-kind': n.kind, role: doorbell ? 'alert' : null,
  }, doorbell ? h('span', { class: 'toast-ring', html: icon('bell') }) : null, main, close);

  let timer = null;
  const remove = () => {
    clearTimeout(timer);
    el.remove();
    toasts.delete(n.id);
    if (thumb.dataset.url) URL.revokeObjectURL(thumb.dataset.url);
  };
  const dismiss = () => remove();
  close.addEventListener('click', dismiss);
  main.addEventListener('click', () => setTimeout(dismiss, 0));
  // A doorbell stays up longer; hovering or focusing keeps any toast up.
  const life = doorbell ? 30_000 : 8_000;
  const arm = () => { clearTimeout(timer); timer = setTimeout(dismiss, life); };
  el.addEventListener('pointerenter', () => clearTimeout(timer));
  el.addEventListener('pointerleave', arm);
  el.addEventListener('focusin', () => clearTimeout(timer));
  el.addEventListener('focusout', arm);
  arm();

  toasts.set(n.id, { remove });
  const box = host();
  box.prepend(el);
  while (box.children.length > MAX_TOASTS) {
    const last = box.lastElementChild;
    const id = Number(last.dataset.eventId);
    if (toasts.has(id)) toasts.get(id).remove(); else last.remove();
  }

  const picture = await loadThumbnail(n.id);
  if (!toasts.has(n.id)) return;
  if (picture?.blob) {
    const url = URL.createObjectURL(picture.blob);
    thumb.dataset.url = url;
    thumb.dataset.state = 'loaded';
    setChildren(thumb, h('img', { src: url, alt: title, width: '96', height: '54' }));
  } else if (picture?.locked) {
    thumb.dataset.state = 'locked';
    setChildren(thumb, h('span', { class: 'ev-thumb-ph', title: 'Locked', html: icon('lock') }));
  } else {
    thumb.dataset.state = 'none';
  }
  notify(n, title, picture?.blob);
}

/**
 * The event's thumbnail as a Blob, trying again for a few seconds while it is not there yet;
 * `{locked: true}` while playback is locked; null if there is none.
 */
async function loadThumbnail(id) {
  if (status.locked === true) return { locked: true };
  for (const wait of [0, 700, 1500, 3000]) {
    if (wait) await new Promise((r) => setTimeout(r, wait));
    if (!feed.running) return null;
    let res;
    try {
      res = await fetch(thumbnailUrl(id), { credentials: 'same-origin' });
    } catch {
      return null;
    }
    if (res.ok) return { blob: await res.blob() };
    if (res.status === 423) { markLocked(); return { locked: true }; }
    if (res.status !== 404) return null;
  }
  return null;
}

// ---------- browser notifications ----------

const PREF = 'hearth.notifications';
const prefListeners = new Set();

/**
 * 'on', 'off' (allowed but turned off here, or never asked), 'denied' (blocked in the
 * browser), 'insecure' (plain http to a LAN address: browsers allow notifications only on
 * https and localhost) or 'unsupported'.
 */
export function notificationState() {
  if (typeof Notification === 'undefined') return window.isSecureContext ? 'unsupported' : 'insecure';
  if (Notification.permission === 'denied') return 'denied';
  if (Notification.permission !== 'granted') return 'off';
  let pref = null;
  try { pref = localStorage.getItem(PREF); } catch { /* private mode */ }
  return pref === 'off' ? 'off' : 'on';
}

function setPref(v) {
  try { localStorage.setItem(PREF, v); } catch { /* private mode */ }
  for (const fn of [...prefListeners]) fn();
}

/** Asks the browser (only ever from a click). Resolves to the new state. */
export async function enableNotifications() {
  if (typeof Notification === 'undefined') return notificationState();
  let permission = Notification.permission;
  if (permission === 'default') {
    try { permission = await Notification.requestPermission(); } catch { /* old API */ }
  }
  if (permission === 'granted') setPref('on');
  return notificationState();
}

export function disableNotifications() {
  setPref('off');
}

/**
 * A browser notification for a start or instant notice, while this page is not in front
 * (when it is, the toast says it).
 */
async function notify(n, title, blob) {
  if (notificationState() !== 'on') return;
  if (document.visibilityState === 'visible' && document.hasFocus()) return;
  const options = {
    body: `${kindLabel(n.kind)} \u00b7 ${fmtTime(n.time_us / 1000)}`,
    tag: `hearth-event-${n.id}`,
    requireInteraction: n.kind === 'doorbell',
  };
  if (blob) options.icon = await dataUrl(blob).catch(() => undefined);
  try {
    const note = new Notification(title, options);
    const href = eventHref(n.camera, n.time_us / 1000);
    note.addEventListener('click', () => {
      window.focus();
      if (href) location.hash = href;
      note.close();
    });
  } catch (e) {
    console.error(e);
  }
}

function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  });
}

const STATE_TEXT = {
  on: 'On: this browser shows a notification for each event while hearth is open in the background.',
  off: 'Off. Turn them on to be told about doorbell presses and motion while hearth is open in another tab.',
  denied: 'Blocked in this browser\u2019s site settings. Allow notifications for this hub there to turn them on.',
  insecure: 'Browsers only allow notifications from hubs reached over https (or on this computer).',
  unsupported: 'This browser cannot show notifications.',
};

/** The notifications switch: state, and a button that asks for permission when pressed. */
export function notificationControl({ compact = false } = {}) {
  const text = h('p', { class: 'muted small', 'data-testid': 'notify-status' });
  const button = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'notify-toggle' });
  const el = h('div', { class: `notify-control${compact ? ' compact' : ''}` }, compact ? null : text, button);
  function render() {
    const s = notificationState();
    el.dataset.state = s;
    text.textContent = STATE_TEXT[s];
    button.title = STATE_TEXT[s];
    button.hidden = s === 'denied' || s === 'insecure' || s === 'unsupported';
    button.replaceChildren(h('span', { html: icon('bell') }), s === 'on' ? 'Turn off notifications' : 'Turn on notifications');
    button.setAttribute('aria-pressed', String(s === 'on'));
    if (compact && button.hidden) {
      el.replaceChildren(h('span', { class: 'muted small', 'data-testid': 'notify-status', title: STATE_TEXT[s] },
        s === 'denied' ? 'Notifications blocked' : 'No browser notifications here'), button);
    }
  }
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      // What the button said when it was pressed.
      if (el.dataset.state === 'on') disableNotifications();
      else await enableNotifications();
    } finally {
      button.disabled = false;
      render();
    }
  });
  prefListeners.add(render);
  // Allowed or blocked in the browser's own settings meanwhile: follow.
  let perm = null;
  navigator.permissions?.query({ name: 'notifications' }).then((p) => {
    perm = p;
    p.addEventListener('change', render);
  }).catch(() => {});
  el.destroy = () => {
    prefListeners.delete(render);
    perm?.removeEventListener('change', render);
  };
  render();
  return el;
}

/** All events of `camera` overlapping [start, end) (ms), oldest first, up to `max`. */
export async function loadEvents(camera, start, end, { max = 3000 } = {}) {
  const out = [];
  let before = null;
  while (out.length < max) {
    const page = await api('events', {
      params: { camera, start: new Date(start).toISOString(), end: new Date(end).toISOString(), limit: 1000, before },
    });
    if (!Array.isArray(page) || !page.length) break;
    out.push(...page);
    if (page.length < 1000) break;
    before = page[page.length - 1].id;
  }
  return out.reverse();
}
