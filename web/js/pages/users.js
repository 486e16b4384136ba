// #/users (admins) — the hub's accounts: add one, change role, disable, set a new password,
// reset 2FA, remove, and per camera what a viewer may do (live, playback, download). Above
// them the hub-wide setting "require 2FA for every account".

import { api } from '../api.js';
import { h, setChildren, fmtDateTime, loading } from '../util.js';
import { session, loadAccount } from '../session.js';
import { labelled, busy } from '../login.js';
import { errorNotice, pageHead, adminTabs, table } from '../ui.js';

const PERMISSIONS = [
  ['live', 'Live'],
  ['playback', 'Recordings'],
  ['download', 'Download'],
];

export function mount(root) {
  let alive = true;
  const listSlot = h('div', { 'data-testid': 'users' }, loading('Loading users\u2026'));
  let cameras = [];
  const open = new Set(); // users whose details are expanded

  root.append(
    pageHead({ title: 'Users', subtitle: 'Who may log in to this hub, and what each of them may watch.' }),
    adminTabs('users'),
    h('div', { class: 'admin-layout' },
      h('div', { class: 'admin-main' }, listSlot),
      h('aside', { class: 'admin-side' }, addUserCard(), settingsCard())));

  async function load() {
    let users;
    try {
      [users, cameras] = await Promise.all([api('users'), api('cameras')]);
    } catch (e) {
      if (alive) setChildren(listSlot, errorNotice(e, { title: 'Couldn\u2019t load users', onRetry: load }));
      return;
    }
    if (!alive) return;
    users.sort((a, b) => (a.role === b.role ? a.name.localeCompare(b.name) : a.role === 'admin' ? -1 : 1));
    setChildren(listSlot, h('ul', { class: 'user-list' }, users.map(userRow)));
  }

  function userRow(u) {
    const self = u.name === session.me.name;
    const badges = [
      h('span', { class: `badge${u.role === 'admin' ? ' accent' : ''}`, 'data-testid': 'user-role' }, u.role === 'admin' ? 'Admin' : 'Viewer'),
      u.totp_enabled ? h('span', { class: 'badge ok', title: 'Two-factor authentication is on' }, '2FA') : null,
      u.disabled ? h('span', { class: 'badge bad', 'data-testid': 'user-disabled' }, 'Disabled') : null,
      self ? h('span', { class: 'badge' }, 'You') : null,
    ];
    const access = u.role === 'admin'
      ? 'Every camera, every right'
      : u.grants.length
        ? u.grants.map((g) => `${g.camera} (${PERMISSIONS.filter(([k]) => g[k]).map(([, l]) => l.toLowerCase()).join(', ')})`).join(' \u00b7 ')
        : 'No cameras yet';
    const details = h('details', { class: 'user-details', open: open.has(u.name) });
    details.addEventListener('toggle', () => {
      if (details.open) open.add(u.name); else open.delete(u.name);
      if (details.open && details.children.length === 1) details.append(userEditor(u));
    });
    details.append(h('summary', { 'data-testid': 'user-edit' },
      h('span', { class: 'user-name' }, u.name), h('span', { class: 'badges' }, badges),
      h('span', { class: 'muted small user-access', 'data-testid': 'user-access' }, access)));
    if (details.open) details.append(userEditor(u));
    return h('li', { class: 'card user-row', 'data-testid': 'user-row', 'data-user': u.name }, details);
  }

  /** The expanded part: grants, role, disable, new password, reset 2FA, remove. */
  function userEditor(u) {
    const msg = h('div', { role: 'status', 'data-testid': 'user-message' });
    const say = (kind, text) => setChildren(msg, h('p', { class: `form-${kind}` }, text));
    const change = async (button, body, done) => {
      try {
        await busy(button, () => api(`users/${encodeURIComponent(u.name)}`, { method: 'PATCH', body }));
        if (u.name === session.me.name) await loadAccount().catch(() => {});
        say('ok', done);
        await load();
      } catch (e) {
        say('error', e.code === 'last_admin' ? 'This is the last admin: the hub needs at least one.' : e.message);
      }
    };

    const role = h('select', { class: 'input input-compact', 'data-testid': 'user-role-select' },
      h('option', { value: 'viewer' }, 'Viewer'), h('option', { value: 'admin' }, 'Admin'));
    role.value = u.role;
    const roleBtn = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'user-role-save' }, 'Change role');
    roleBtn.addEventListener('click', () => change(roleBtn, { role: role.value }, `${u.name} is now ${role.value === 'admin' ? 'an admin' : 'a viewer'}.`));

    const disable = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'user-disable' }, u.disabled ? 'Enable' : 'Disable');
    disable.addEventListener('click', () => change(disable, { disabled: !u.disabled },
      u.disabled ? `${u.name} may log in again.` : `${u.name} is disabled and logged out everywhere.`));

    const password = labelled('New password', { type: 'password', autocomplete: 'new-password', 'data-testid': 'user-password' });
    const passBtn = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'user-password-save' }, 'Set password');
    passBtn.addEventListener('click', () => {
      if (password.input.value.length < 12) return say('error', 'Passwords need at least 12 characters.');
      return change(passBtn, { password: password.input.value }, `New password set; ${u.name} was logged out everywhere.`);
    });

    const reset2fa = u.totp_enabled
      ? h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'user-reset-totp' }, 'Reset 2FA')
      : null;
    reset2fa?.addEventListener('click', () => change(reset2fa, { reset_totp: true }, `${u.name}'s two-factor authentication was removed; they can set it up again.`));

    const remove = h('button', { type: 'button', class: 'btn btn-small btn-danger', 'data-testid': 'user-remove' }, 'Remove');
    remove.addEventListener('click', async () => {
      if (!window.confirm(`Remove ${u.name}? Their sessions end at once. The audit log keeps what they did.`)) return;
      try {
        await busy(remove, () => api(`users/${encodeURIComponent(u.name)}`, { method: 'DELETE' }));
        open.delete(u.name);
        await load();
      } catch (e) {
        say('error', e.code === 'last_admin' ? 'This is the last admin: the hub needs at least one.' : e.message);
      }
    });

    return h('div', { class: 'user-editor' },
      u.role === 'admin'
        ? h('p', { class: 'muted small' }, 'Admins see and may do everything with every camera.')
        : grantsEditor(u),
      h('div', { class: 'user-actions' },
        h('div', { class: 'inline-field' }, h('span', { class: 'label' }, 'Role'), role, roleBtn),
        h('div', { class: 'inline-field' }, password.field, passBtn),
        h('div', { class: 'inline-field' }, disable, reset2fa, remove)),
      msg,
      h('p', { class: 'muted small' }, `Created ${fmtDateTime(u.created_us / 1000)}`));
  }

  /** Cameras × rights as checkboxes, saved with `PUT /api/users/{name}/grants`. */
  function grantsEditor(u) {
    const boxes = [];
    const rows = cameras.map((c) => {
      const g = u.grants.find((x) => x.camera === c.name) || {};
      return h('tr', { 'data-camera': c.name }, h('th', { scope: 'row' }, c.name), PERMISSIONS.map(([perm, label]) => {
        const box = h('input', {
          type: 'checkbox', checked: !!g[perm], 'data-testid': 'grant', 'data-camera': c.name, 'data-permission': perm,
          'aria-label': `${label}: ${c.name}`,
        });
        boxes.push(box);
        return h('td', { class: 'center' }, box);
      }));
    });
    const msg = h('span', { role: 'status', class: 'small', 'data-testid': 'grants-message' });
    const save = h('button', { type: 'button', class: 'btn btn-small btn-primary', 'data-testid': 'grants-save' }, 'Save access');
    save.addEventListener('click', async () => {
      const grants = cameras.map((c) => {
        const g = { camera: c.name };
        for (const b of boxes) if (b.dataset.camera === c.name) g[b.dataset.permission] = b.checked;
        return g;
      }).filter((g) => g.live || g.playback || g.download);
      try {
        await busy(save, () => api(`users/${encodeURIComponent(u.name)}/grants`, { method: 'PUT', body: grants }));
        u.grants = grants;
        setChildren(msg, h('span', { class: 'ok-text' }, 'Saved. It applies at once, live video included.'));
      } catch (e) {
        setChildren(msg, h('span', { class: 'error-text' }, e.message));
      }
    });
    if (!cameras.length) return h('p', { class: 'muted small' }, 'No cameras are configured yet.');
    return h('div', { class: 'grants', 'data-testid': 'grants-editor' },
      h('h3', { class: 'small-head' }, 'What they may watch'),
      table([['Camera'], ...PERMISSIONS.map(([, label]) => [label, 'center'])], rows, { class: 'data-table grants-table' }),
      h('div', { class: 'form-actions' }, save, msg));
  }

  function addUserCard() {
    const name = labelled('Name', { autocomplete: 'off', 'data-testid': 'new-user-name', placeholder: 'e.g. neighbour' });
    const password = labelled('Password (at least 12 characters)', { type: 'password', autocomplete: 'new-password', 'data-testid': 'new-user-password' });
    const role = h('select', { class: 'input', id: 'new-user-role', 'data-testid': 'new-user-role' },
      h('option', { value: 'viewer' }, 'Viewer \u2014 only the cameras you choose'), h('option', { value: 'admin' }, 'Admin \u2014 everything'));
    const msg = h('div', { role: 'status', 'data-testid': 'new-user-message' });
    const button = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'new-user-submit' }, 'Add user');
    const form = h('form', { class: 'stack-form', 'data-testid': 'new-user-form', novalidate: true },
      name.field, password.field,
      h('div', { class: 'field' }, h('label', { class: 'label', for: 'new-user-role' }, 'Role'), role),
      msg, h('div', { class: 'form-actions' }, button));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      msg.replaceChildren();
      const n = name.input.value.trim();
      if (!n) return setChildren(msg, h('p', { class: 'form-error' }, 'Enter a name.'));
      if (password.input.value.length < 12) return setChildren(msg, h('p', { class: 'form-error' }, 'The password needs at least 12 characters.'));
      try {
        await busy(button, () => api('users', { method: 'POST', body: { name: n, password: password.input.value, role: role.value } }));
        name.input.value = '';
        password.input.value = '';
        setChildren(msg, h('p', { class: 'form-ok' }, role.value === 'admin' ? `${n} added.` : `${n} added. Now choose which cameras they may watch.`));
        open.add(n);
        await load();
      } catch (e) {
        setChildren(msg, h('p', { class: 'form-error' }, e.code === 'user_exists' ? `There is already a user called ${n}.` : e.message));
      }
    });
    return h('section', { class: 'card', 'aria-labelledby': 'add-user-title' },
      h('div', { class: 'card-head' }, h('h2', { id: 'add-user-title' }, 'Add a user')), form);
  }

  function settingsCard() {
    const box = h('input', { type: 'checkbox', 'data-testid': 'require-2fa', disabled: true });
    const msg = h('div', { role: 'status', class: 'small' });
    (async () => {
      try {
        box.checked = (await api('settings')).require_2fa;
        box.disabled = false;
      } catch (e) {
        setChildren(msg, h('p', { class: 'form-error' }, e.message));
      }
    })();
    box.addEventListener('change', async () => {
      box.disabled = true;
      try {
        const s = await api('settings', { method: 'PUT', body: { require_2fa: box.checked } });
        box.checked = s.require_2fa;
        setChildren(msg, h('p', { class: 'form-ok' }, s.require_2fa
          ? 'Required. Accounts without it must set it up at their next login.'
          : 'No longer required.'));
      } catch (e) {
        box.checked = !box.checked;
        setChildren(msg, h('p', { class: 'form-error' }, e.message));
      } finally {
        box.disabled = false;
      }
    });
    return h('section', { class: 'card', 'data-testid': 'settings-card', 'aria-labelledby': 'settings-title' },
      h('div', { class: 'card-head' }, h('h2', { id: 'settings-title' }, 'Security')),
      h('label', { class: 'check' }, box, h('span', null, 'Require two-factor authentication for every account')),
      h('p', { class: 'muted small' }, 'Whoever has not set it up is asked to at their next login, before they can see anything.'),
      msg);
  }

  load();
  return () => { alive = false; };
}
