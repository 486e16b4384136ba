// Shared pieces of UI: status pills, notices, empty states, page headers.

import { h, fmtAgo, parseTime } from './util.js';
import { icon } from './icons.js';

const STATUS_LABEL = { online: 'Online', offline: 'Offline', connecting: 'Connecting' };

/**
 * A camera's status: a tinted pill, or with `inline` just a coloured dot and label (for
 * places such as the grid card's footer where a pill would be too loud).
 */
export function statusPill(status, { inline = false } = {}) {
  const s = STATUS_LABEL[status] ? status : 'offline';
  return h('span', { class: `${inline ? 'status-inline' : 'status-pill'} status-${s}`, 'data-testid': 'camera-status', 'data-status': s },
    h('span', { class: 'status-dot', 'aria-hidden': 'true' }), STATUS_LABEL[s] || status);
}

/** An API error as a calm card: message, machine code, and a retry button. */
export function errorNotice(err, { onRetry, title = 'Something went wrong' } = {}) {
  const offline = err && err.status === 0;
  return h('div', { class: 'notice error', role: 'alert', 'data-testid': 'api-error', 'data-code': err?.code || '' },
    h('span', { class: 'notice-icon', html: icon('alert') }),
    h('div', { class: 'notice-body' },
      h('strong', null, offline ? 'Can\u2019t reach the hub' : title),
      h('p', null, err?.message || String(err)),
      err?.code && !offline ? h('p', { class: 'muted small mono' }, `${err.code}${err.status ? ` · HTTP ${err.status}` : ''}`) : null),
    onRetry ? h('button', { type: 'button', class: 'btn btn-small', onclick: onRetry }, h('span', { html: icon('refresh') }), 'Retry') : null);
}

/** A centred empty state with an icon, a title, a line of text and optional actions. */
export function emptyState({ iconName = 'camera', title, text, actions = [], testid = 'empty-state' }) {
  return h('div', { class: 'empty', 'data-testid': testid },
    h('div', { class: 'empty-icon', html: icon(iconName) }),
    h('h2', null, title),
    text ? h('p', { class: 'muted' }, text) : null,
    actions.length ? h('div', { class: 'empty-actions' }, actions) : null);
}

/** What an offline camera shows in place of video: last error and when it was last seen. */
export function offlinePanel(cam, { big = false } = {}) {
  const seen = parseTime(cam.last_frame);
  const connecting = cam.status === 'connecting';
  return h('div', { class: `media-placeholder ${connecting ? 'is-connecting' : 'is-offline'}${big ? ' big' : ''}`, 'data-testid': 'camera-offline' },
    h('span', { class: 'placeholder-icon', html: connecting ? '<span class="spinner"></span>' : icon('videoOff') }),
    h('strong', null, connecting ? 'Connecting to camera\u2026' : 'Camera offline'),
    cam.last_error ? h('span', { class: 'placeholder-error', title: cam.last_error, 'data-testid': 'camera-last-error' }, cam.last_error) : null,
    h('span', { class: 'placeholder-seen', 'data-testid': 'camera-last-seen' }, seen ? `Last seen ${fmtAgo(seen)}` : 'Never seen yet'));
}

/** In place of live video when the account may watch a camera's recordings but not live. */
export function recordingsOnlyPanel({ big = false } = {}) {
  return h('div', { class: `media-placeholder${big ? ' big' : ''}`, 'data-testid': 'camera-no-live' },
    h('span', { class: 'placeholder-icon', html: icon('film') }),
    h('strong', null, 'Recordings only'),
    h('span', { class: 'placeholder-seen' }, 'You may watch this camera\u2019s recordings, not live.'));
}

export function pageHead({ title, subtitle, back, actions } = {}) {
  return h('div', { class: 'page-head' },
    h('div', { class: 'page-title' },
      back ? h('a', { class: 'back-link', href: back.href }, h('span', { html: icon('chevronLeft') }), back.label) : null,
      h('h1', null, title),
      subtitle ? h('p', { class: 'muted page-subtitle' }, subtitle) : null),
    actions ? h('div', { class: 'page-actions' }, actions) : null);
}

/** The admin pages' tabs: users (and settings), the audit log, outbound connections. */
export function adminTabs(active) {
  const tabs = [['users', 'Users'], ['audit', 'Audit log'], ['connections', 'Connections']];
  return h('nav', { class: 'subnav', 'aria-label': 'Admin' }, tabs.map(([id, label]) =>
    h('a', { href: `#/${id}`, class: 'subnav-link', 'data-testid': `admin-tab-${id}`, 'aria-current': id === active ? 'page' : null }, label)));
}

/** A table: `columns` as [label, className?], `rows` as arrays of cells, `attrs` on the table. */
export function table(columns, rows, attrs = {}) {
  return h('table', { class: 'data-table', ...attrs },
    h('thead', null, h('tr', null, columns.map(([label, cls]) => h('th', { scope: 'col', class: cls || null }, label)))),
    h('tbody', null, rows));
}

/** A segmented control (radio-like buttons). */
export function segmented({ label, options, value, onChange, testid }) {
  const wrap = h('div', { class: 'seg', role: 'group', 'aria-label': label, 'data-testid': testid });
  const buttons = options.map((o) => {
    const b = h('button', {
      type: 'button', class: 'seg-btn', 'aria-pressed': String(o.value === value), 'data-value': String(o.value),
      onclick: () => { set(o.value); onChange(o.value); },
    }, o.label);
    if (o.title) b.title = o.title;
    return b;
  });
  function set(v) {
    for (const b of buttons) b.setAttribute('aria-pressed', String(b.dataset.value === String(v)));
  }
  wrap.append(...buttons);
  wrap.set = set;
  return wrap;
}

/** Enter fullscreen on an element (iOS Safari: the native video player). */
export function toggleFullscreen(el, video) {
  if (document.fullscreenElement) { document.exitFullscreen?.(); return; }
  if (el.requestFullscreen) el.requestFullscreen().catch(() => video?.webkitEnterFullscreen?.());
  else if (el.webkitRequestFullscreen) el.webkitRequestFullscreen();
  else video?.webkitEnterFullscreen?.();
}
