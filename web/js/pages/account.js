// #/account — who is logged in, their password, two-factor authentication, where they are
// logged in (with a way to end each session), logging out, and the hub's privacy facts.

import { api } from '../api.js';
import { h, setChildren, fmtAgo, fmtDateTime, loading } from '../util.js';
import { icon } from '../icons.js';
import { onStatus, openLockDialog } from '../lock.js';
import { session, loadAccount, isAdmin, logout, deviceName } from '../session.js';
import { labelled, busy, totpEnrolment } from '../login.js';
import { errorNotice, pageHead } from '../ui.js';
import { notificationControl } from '../events.js';

const ROLE = { admin: 'Admin', viewer: 'Viewer' };

export function mount(root) {
  const cleanups = [];
  const me = session.me;
  const logoutBtn = h('button', { type: 'button', class: 'btn', 'data-testid': 'logout', onclick: () => busy(logoutBtn, logout) },
    'Log out');
  root.append(pageHead({
    title: 'Account',
    subtitle: h('span', { 'data-testid': 'account-summary' }, `${me.name} \u00b7 ${ROLE[me.role] || me.role}`),
    actions: logoutBtn,
  }));
  const grid = h('div', { class: 'account-grid' });
  root.append(grid);
  grid.append(passwordCard(), twoFactorCard(), notificationsCard(cleanups), sessionsCard(cleanups), privacyCard(cleanups));
  return () => cleanups.forEach((c) => c());
}

/** Current, new, repeat → `POST /api/account/password`; other sessions end. */
function passwordCard() {
  const current = labelled('Current password', { type: 'password', autocomplete: 'current-password', 'data-testid': 'password-current' });
  const next = labelled('New password', { type: 'password', autocomplete: 'new-password', minlength: '12', 'data-testid': 'password-new' });
  const repeat = labelled('New password again', { type: 'password', autocomplete: 'new-password', 'data-testid': 'password-repeat' });
  const msg = h('div', { role: 'status', 'data-testid': 'password-message' });
  const button = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'password-submit' }, 'Change password');
  const say = (kind, text) => setChildren(msg, h('p', { class: `form-${kind}` }, text));
  const form = h('form', { class: 'stack-form', 'data-testid': 'password-form', novalidate: true },
    // For password managers: whose password this is.
    h('input', { type: 'text', name: 'username', autocomplete: 'username', value: session.me.name, hidden: true, 'aria-hidden': 'true', tabindex: '-1' }),
    current.field, next.field, repeat.field, msg, h('div', { class: 'form-actions' }, button));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.replaceChildren();
    if (!current.input.value) return say('error', 'Enter your current password.');
    if (next.input.value.length < 12) return say('error', 'The new password needs at least 12 characters. A few words make a good one.');
    if (next.input.value !== repeat.input.value) return say('error', 'The two new passwords differ.');
    try {
      await busy(button, () => api('account/password', { method: 'POST', body: { current: current.input.value, new: next.input.value } }));
      for (const f of [current, next, repeat]) f.input.value = '';
      say('ok', 'Password changed. Every other device logged in as you has been logged out.');
    } catch (e) {
      say('error', e.code === 'wrong_password' ? 'The current password is wrong.' : e.message);
    }
  });
  return h('section', { class: 'card account-card', 'data-testid': 'password-card' },
    h('h2', null, 'Password'),
    h('p', { class: 'muted small' }, 'Changing it logs you out everywhere else.'),
    form);
}

/** On: a note and a way to turn it off (with the password). Off: set it up here. */
function twoFactorCard() {
  const body = h('div', { class: 'stack' });
  const card = h('section', { class: 'card account-card', 'data-testid': 'totp-card' }, h('h2', null, 'Two-factor authentication'), body);

  function render() {
    const me = session.me;
    card.dataset.enabled = String(!!me.totp_enabled);
    card.classList.remove('wide');
    if (!me.totp_enabled) {
      const start = h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'totp-start' }, h('span', { html: icon('shield') }), 'Set up');
      start.addEventListener('click', () => {
        card.classList.add('wide');
        setChildren(body, totpEnrolment({
          onDone: async () => { await loadAccount().catch(() => {}); render(); },
          onCancel: render,
        }));
      });
      setChildren(body,
        h('p', { class: 'muted', 'data-testid': 'totp-status' }, 'Off. Logging in needs only your password.'),
        h('p', { class: 'muted small' }, 'With it on, logging in also needs a 6-digit code from an app on your phone.'),
        h('div', { class: 'form-actions' }, start));
      return;
    }
    const password = labelled('Password', { type: 'password', autocomplete: 'current-password', 'data-testid': 'totp-disable-password' });
    const msg = h('div', { role: 'status' });
    const off = h('button', { type: 'submit', class: 'btn btn-danger', 'data-testid': 'totp-disable' }, 'Turn off');
    const form = h('form', { class: 'stack-form', novalidate: true }, password.field, msg, h('div', { class: 'form-actions' }, off));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        await busy(off, () => api('account/totp/disable', { method: 'POST', body: { password: password.input.value } }));
        await loadAccount().catch(() => {});
        render();
      } catch (e) {
        setChildren(msg, h('p', { class: 'form-error' }, e.code === 'wrong_password' ? 'Wrong password.' : e.message));
      }
    });
    setChildren(body,
      h('p', { class: 'ok-text', 'data-testid': 'totp-status' }, h('span', { html: icon('check') }), 'On. Logging in needs a code from your authenticator app.'),
      me.require_2fa
        ? h('p', { class: 'muted small' }, 'An admin requires it for every account, so it stays on.')
        : h('details', { class: 'disclosure' }, h('summary', null, 'Turn off two-factor authentication'), form));
  }
  render();
  return card;
}

/** Where this account is logged in; admins may list everyone's. */
function sessionsCard(cleanups) {
  const list = h('div', { 'data-testid': 'sessions' }, loading('Loading sessions\u2026'));
  const all = h('input', { type: 'checkbox', 'data-testid': 'sessions-all' });
  const head = h('div', { class: 'card-head' }, h('h2', null, 'Where you are logged in'),
    isAdmin() ? h('label', { class: 'check small' }, all, h('span', null, 'Everyone')) : null);
  all.addEventListener('change', () => load());
  let alive = true;
  cleanups.push(() => { alive = false; });

  async function load() {
    let rows;
    try {
      rows = await api('sessions', { params: { all: all.checked ? 'true' : null } });
    } catch (e) {
      if (alive) setChildren(list, errorNotice(e, { title: 'Couldn\u2019t load sessions', onRetry: load }));
      return;
    }
    if (!alive) return;
    rows.sort((a, b) => (b.current - a.current) || (b.last_seen_us - a.last_seen_us));
    setChildren(list, h('ul', { class: 'session-list' }, rows.map((s) => {
      const end = h('button', {
        type: 'button', class: 'btn btn-small', 'data-testid': 'session-revoke',
        onclick: () => busy(end, async () => {
          if (s.current) return logout();
          try {
            await api(`sessions/${s.id}`, { method: 'DELETE' });
          } catch (e) {
            if (e.code !== 'no_such_session') throw e;
          }
          return load();
        }),
      }, s.current ? 'Log out' : 'End');
      return h('li', { class: 'session-row', 'data-testid': 'session-row', 'data-session': s.id, 'data-current': String(!!s.current) },
        h('div', { class: 'session-main' },
          h('strong', { 'data-testid': 'session-device', title: s.user_agent || '' }, deviceName(s.user_agent)),
          s.current ? h('span', { class: 'badge ok', 'data-testid': 'session-current' }, 'This device') : null,
          all.checked ? h('span', { class: 'badge' }, s.user) : null,
          h('span', { class: 'muted small session-meta' },
            `${s.address || 'unknown address'} \u00b7 last used ${fmtAgo(s.last_seen_us / 1000)} \u00b7 since ${fmtDateTime(s.created_us / 1000)}`)),
        end);
    })));
  }
  load();
  return h('section', { class: 'card account-card wide', 'data-testid': 'sessions-card' }, head,
    h('p', { class: 'muted small' }, 'Lost a phone or used someone else\u2019s computer? End that session here; it is logged out at once, live video included.'),
    list);
}

/** Browser notifications for events; the browser is asked only when the button is pressed. */
function notificationsCard(cleanups) {
  const control = notificationControl();
  cleanups.push(() => control.destroy());
  return h('section', { class: 'card account-card', 'data-testid': 'notifications-card' },
    h('h2', null, 'Notifications'),
    h('p', { class: 'muted small' }, 'While hearth is open, doorbell presses and motion show up on the page. This browser can also notify you when hearth is in the background.'),
    control);
}

function privacyCard(cleanups) {
  const lockLine = h('p', { class: 'muted' });
  const lockBtn = h('button', { type: 'button', class: 'btn', onclick: openLockDialog });
  const version = h('span', { 'data-testid': 'hub-version' });
  cleanups.push(onStatus((s) => {
    lockLine.textContent = s.locked === false
      ? 'Recordings are unlocked on this hub: people you gave playback access can watch them.'
      : 'Recordings are locked: clips stay encrypted until an admin enters the passphrase.';
    lockBtn.replaceChildren(h('span', { html: icon(s.locked === false ? 'lock' : 'unlock') }), s.locked === false ? 'Lock now' : 'Unlock');
    version.textContent = s.version ? `hearth ${s.version}` : '';
  }));
  return h('section', { class: 'card account-card' },
    h('h2', null, 'Privacy'),
    h('p', { class: 'muted' }, 'Everything on this page is served by your hub. No cloud, no analytics, nothing fetched from anywhere else.'),
    lockLine,
    isAdmin() ? h('div', { class: 'form-actions' }, lockBtn) : null,
    h('p', { class: 'muted small' }, version));
}
