// The hub's lock: recordings are encrypted and play only after the owner's passphrase has
// unlocked the private key (held in the hub's memory). Live view works either way.

import { api, ApiError } from './api.js';
import { h, setChildren } from './util.js';
import { icon } from './icons.js';
import { isAdmin } from './session.js';

/** Latest `GET /api/status`, plus `error` when the hub could not be reached. */
export const status = { locked: null, version: null, cameras: null, error: null, loaded: false };

const listeners = new Set();

/** Call `fn(status)` on every change (and now, if already loaded); returns an unsubscribe. */
export function onStatus(fn) {
  listeners.add(fn);
  if (status.loaded) fn(status);
  return () => listeners.delete(fn);
}

function emit() {
  for (const fn of [...listeners]) {
    try { fn(status); } catch (e) { console.error(e); }
  }
}

let inflight = null;

export function refreshStatus() {
  if (inflight) return inflight;
  inflight = (async () => {
    try {
      const s = await api('status');
      Object.assign(status, { locked: !!s.locked, version: s.version ?? null, cameras: s.cameras ?? null, error: null });
    } catch (e) {
      status.error = e;
    } finally {
      status.loaded = true;
      inflight = null;
    }
    emit();
    return status;
  })();
  return inflight;
}

/** Something (a 423 answer) told us playback is locked: update everyone at once. */
export function markLocked() {
  if (status.locked !== true) {
    status.locked = true;
    emit();
  }
  refreshStatus();
}

export async function lockNow() {
  await api('lock', { method: 'POST' });
  status.locked = true;
  emit();
  refreshStatus();
}

/**
 * The unlock form: a passphrase field and a button. `onUnlocked` runs after a 204.
 * Used in the header dialog and inline wherever recordings are needed.
 */
export function unlockForm({ onUnlocked, autofocus = false, compact = false } = {}) {
  // Only admins may unlock (the hub answers 403 to anyone else).
  if (!isAdmin()) {
    return h('p', { class: 'muted small', 'data-testid': 'unlock-admin-only' },
      'Only an admin of this hub can unlock them. Ask one to unlock recordings.');
  }
  const id = `pp-${Math.random().toString(36).slice(2, 8)}`;
  const input = h('input', {
    id, type: 'password', name: 'passphrase', autocomplete: 'current-password', required: true,
    class: 'input', 'data-testid': 'unlock-passphrase', spellcheck: 'false', autocapitalize: 'off',
    'aria-describedby': `${id}-err`, placeholder: compact ? 'Passphrase' : null,
  });
  const err = h('p', { id: `${id}-err`, class: 'form-error', role: 'alert', 'data-testid': 'unlock-error', hidden: true });
  const button = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'unlock-submit' },
    h('span', { html: icon('unlock') }), 'Unlock');
  const form = h('form', { class: `unlock-form${compact ? ' compact' : ''}`, 'data-testid': 'unlock-form', novalidate: true },
    // For password managers: the passphrase belongs to "hearth" on this hub.
    h('input', { type: 'text', name: 'username', autocomplete: 'username', value: 'hearth', hidden: true, 'aria-hidden': 'true', tabindex: '-1' }),
    h('label', { for: id, class: 'label' }, 'Passphrase'),
    h('div', { class: 'input-row' }, input, button),
    err);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    if (!input.value) {
      err.textContent = 'Enter the passphrase you chose when you set up the hub.';
      err.hidden = false;
      input.focus();
      return;
    }
    button.disabled = true;
    button.classList.add('busy');
    try {
      await api('unlock', { method: 'POST', body: { passphrase: input.value } });
      input.value = '';
      status.locked = false;
      emit();
      refreshStatus();
      onUnlocked?.();
    } catch (e) {
      err.textContent = e instanceof ApiError && (e.status === 403 || e.code === 'wrong_passphrase')
        ? 'Wrong passphrase. Try again.'
        : e.message;
      err.hidden = false;
      input.select();
      input.focus();
    } finally {
      button.disabled = false;
      button.classList.remove('busy');
    }
  });
  if (autofocus) requestAnimationFrame(() => input.focus());
  return form;
}

/** The "recordings are locked" card shown in place of playback. */
export function lockedPanel({ onUnlocked, title = 'Recordings are locked' } = {}) {
  return h('div', { class: 'locked-panel', 'data-testid': 'locked-panel' },
    h('div', { class: 'locked-icon', html: icon('lock') }),
    h('h3', null, title),
    h('p', { class: 'muted' }, isAdmin()
      ? 'Clips are encrypted on the hub. Enter your passphrase to play and download them. Live view works without it.'
      : 'Clips are encrypted on the hub until an admin unlocks them with the passphrase. Live view works without it.'),
    unlockForm({ onUnlocked, compact: true }));
}

let dialog = null;

/** The header dialog: unlock form when locked, "Lock now" when unlocked. Esc closes it. */
export function openLockDialog() {
  if (!dialog) {
    dialog = h('dialog', { class: 'dialog', 'data-testid': 'lock-dialog', 'aria-labelledby': 'lock-dialog-title' });
    dialog.addEventListener('click', (ev) => { if (ev.target === dialog) dialog.close(); });
    document.body.append(dialog);
  }
  const close = h('button', { type: 'button', class: 'btn-icon dialog-close', 'aria-label': 'Close', html: icon('close'), onclick: () => dialog.close() });
  if (status.locked === false) {
    const err = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const btn = h('button', {
      type: 'button', class: 'btn btn-danger', 'data-testid': 'lock-now',
      onclick: async () => {
        btn.disabled = true;
        try { await lockNow(); dialog.close(); } catch (e) { err.textContent = e.message; err.hidden = false; } finally { btn.disabled = false; }
      },
    }, h('span', { html: icon('lock') }), 'Lock now');
    setChildren(dialog,
      close,
      h('div', { class: 'dialog-icon ok', html: icon('unlock') }),
      h('h2', { id: 'lock-dialog-title' }, 'Recordings are unlocked'),
      h('p', { class: 'muted' }, 'Anyone using this hub can play and download recorded clips until it is locked again. Locking forgets the key; recording carries on.'),
      err,
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'btn', onclick: () => dialog.close() }, 'Keep unlocked'), btn));
    if (!dialog.open) dialog.showModal();
    btn.focus();
  } else {
    setChildren(dialog,
      close,
      h('div', { class: 'dialog-icon', html: icon('lock') }),
      h('h2', { id: 'lock-dialog-title' }, 'Unlock recordings'),
      h('p', { class: 'muted' }, 'Clips are encrypted on the hub. Your passphrase unlocks playback until you lock it again or the hub restarts. Live view works without it.'),
      unlockForm({ onUnlocked: () => dialog.close(), autofocus: true }));
    if (!dialog.open) dialog.showModal();
  }
}

/** The header badge: reflects the lock state, opens the dialog. */
export function lockBadge() {
  const btn = h('button', { type: 'button', class: 'lock-badge', 'data-testid': 'lock-badge', onclick: openLockDialog });
  onStatus((s) => {
    const state = s.locked === null ? 'unknown' : s.locked ? 'locked' : 'unlocked';
    btn.dataset.state = state;
    btn.innerHTML = `${icon(s.locked === false ? 'unlock' : 'lock')}<span class="lock-label">${
      state === 'locked' ? 'Locked' : state === 'unlocked' ? 'Unlocked' : '…'}</span>`;
    btn.setAttribute('aria-label', state === 'locked' ? 'Recordings locked. Unlock…'
      : state === 'unlocked' ? 'Recordings unlocked. Lock…' : 'Lock status unknown');
    btn.title = state === 'locked' ? 'Recordings are locked' : state === 'unlocked' ? 'Recordings are unlocked' : '';
    if (dialog?.open && s.locked === true && dialog.querySelector('[data-testid="lock-now"]')) dialog.close();
  });
  return btn;
}
