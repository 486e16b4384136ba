// #/audit (admins) — who did what: logins, live views, clip views, exports, account changes,
// refusals. Newest first, filtered by user, camera, action and time; "load more" pages back
// by id; the same filters export CSV. On top: whether the hash chain is intact.

import { api, apiUrl } from '../api.js';
import { h, setChildren, loading, replaceQuery } from '../util.js';
import { icon } from '../icons.js';
import { errorNotice, emptyState, pageHead, adminTabs, table } from '../ui.js';

const PAGE = 100;

export const ACTIONS = [
  ['login', 'Logged in'], ['login_failed', 'Login refused'], ['logout', 'Logged out'],
  ['live_start', 'Live view started'], ['live_stop', 'Live view ended'], ['clip_view', 'Watched a clip'],
  ['export', 'Exported'], ['snapshot', 'Snapshot'], ['user_add', 'User added'], ['user_rm', 'User removed'],
  ['user_change', 'User changed'], ['password_change', 'Password changed'], ['totp_change', '2FA changed'],
  ['session_revoke', 'Session ended'], ['grant_change', 'Access changed'], ['unlock', 'Unlocked'],
  ['lock', 'Locked'], ['settings_change', 'Settings changed'], ['denied', 'Refused'],
];
const ACTION_LABEL = Object.fromEntries(ACTIONS);
// To the second: an audit row's time matters more than a clip list's.
const timeFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric', hour: 'numeric', minute: '2-digit', second: '2-digit' });

/** `datetime-local` value → RFC 3339 (UTC), or '' when empty/invalid. */
function rfc3339(value) {
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? '' : new Date(ms).toISOString();
}

export function mount(root, { query }) {
  let alive = true;
  const verify = h('div', { class: 'verify', 'data-testid': 'audit-verify', 'data-state': 'checking' }, 'Checking the log\u2026');

  const user = h('input', { class: 'input input-compact', id: 'audit-user', 'data-testid': 'audit-user', list: 'audit-users', value: query.user || '', placeholder: 'anyone', autocomplete: 'off' });
  const users = h('datalist', { id: 'audit-users' });
  const camera = h('select', { class: 'input input-compact', id: 'audit-camera', 'data-testid': 'audit-camera' }, h('option', { value: '' }, 'Any camera'));
  const action = h('select', { class: 'input input-compact', id: 'audit-action', 'data-testid': 'audit-action' },
    h('option', { value: '' }, 'Any action'), ACTIONS.map(([v, l]) => h('option', { value: v }, l)));
  action.value = ACTION_LABEL[query.action] ? query.action : '';
  const from = h('input', { type: 'datetime-local', class: 'input input-compact', id: 'audit-from', 'data-testid': 'audit-from', value: query.from || '' });
  const to = h('input', { type: 'datetime-local', class: 'input input-compact', id: 'audit-to', 'data-testid': 'audit-to', value: query.to || '' });
  const csv = h('a', { class: 'btn btn-small', 'data-testid': 'audit-csv', download: 'hearth-audit.csv' }, h('span', { html: icon('download') }), 'CSV');
  const item = (label, id, input) => h('div', { class: 'filter-item' }, h('label', { class: 'filter-label', for: id }, label), input);
  const filters = h('form', { class: 'filter-bar', role: 'search', 'aria-label': 'Filter the audit log', 'data-testid': 'audit-filters', onsubmit: (e) => { e.preventDefault(); reload(); } },
    item('User', 'audit-user', user), users, item('Camera', 'audit-camera', camera), item('Action', 'audit-action', action),
    item('From', 'audit-from', from), item('To', 'audit-to', to),
    h('button', { type: 'submit', class: 'btn btn-small btn-primary', 'data-testid': 'audit-apply' }, 'Apply'), csv);
  for (const el of [user, camera, action, from, to]) el.addEventListener('change', reload);

  const listSlot = h('div', null, loading('Loading the audit log\u2026'));
  const tbody = h('tbody', { 'data-testid': 'audit-rows' });
  const more = h('button', { type: 'button', class: 'btn show-more', 'data-testid': 'audit-more', hidden: true, onclick: () => page() }, 'Load older entries');
  let oldest = null;

  root.append(
    pageHead({ title: 'Audit log', subtitle: 'Who logged in, watched, exported or changed what on this hub.' }),
    adminTabs('audit'), verify, filters, listSlot);

  function params() {
    return { user: user.value.trim(), camera: camera.value, action: action.value, start: rfc3339(from.value), end: rfc3339(to.value) };
  }

  function reload() {
    replaceQuery({ user: user.value.trim(), camera: camera.value, action: action.value, from: from.value, to: to.value });
    csv.href = apiUrl('audit', { ...params(), format: 'csv' });
    oldest = null;
    tbody.replaceChildren();
    setChildren(listSlot, loading('Loading the audit log\u2026'));
    page();
  }

  async function page() {
    let rows;
    try {
      rows = await api('audit', { params: { ...params(), before: oldest, limit: PAGE } });
    } catch (e) {
      if (alive) setChildren(listSlot, errorNotice(e, { title: 'Couldn\u2019t load the audit log', onRetry: reload }));
      return;
    }
    if (!alive) return;
    if (oldest === null && !rows.length) {
      setChildren(listSlot, emptyState({ iconName: 'shield', title: 'Nothing here', text: 'No entry matches these filters.', testid: 'audit-empty' }));
      return;
    }
    if (oldest === null) {
      setChildren(listSlot, h('div', { class: 'card table-card' },
        table([['Time'], ['User'], ['Action'], ['Camera'], ['Details'], ['Result'], ['Address']], [], { class: 'data-table audit-table', 'data-testid': 'audit-table' })),
      more);
      listSlot.querySelector('table').replaceChild(tbody, listSlot.querySelector('tbody'));
    }
    tbody.append(...rows.map(row));
    if (rows.length) oldest = rows[rows.length - 1].id;
    more.hidden = rows.length < PAGE;
  }

  function row(r) {
    const ok = r.result === 'ok';
    return h('tr', { 'data-testid': 'audit-row', 'data-id': r.id, 'data-action': r.action, 'data-user': r.user || '', 'data-result': r.result },
      h('td', { class: 'nowrap', title: r.time }, timeFmt.format(r.time_us / 1000)),
      h('td', null, r.user || '\u2014'),
      h('td', null, h('span', { class: `action action-${r.action}` }, ACTION_LABEL[r.action] || r.action)),
      h('td', null, r.camera || ''),
      h('td', { class: 'mono wrap' }, r.target || ''),
      h('td', null, ok ? h('span', { class: 'ok-text' }, 'ok') : h('span', { class: 'error-text' }, r.result)),
      h('td', { class: 'mono' }, r.address || ''));
  }

  async function checkChain() {
    try {
      const v = await api('audit/verify');
      if (!alive) return;
      const intact = v.first_broken_id === null || v.first_broken_id === undefined;
      verify.dataset.state = intact ? 'intact' : 'tampered';
      verify.className = `verify notice ${intact ? 'ok' : 'error'}`;
      setChildren(verify,
        h('span', { class: 'notice-icon', html: icon(intact ? 'check' : 'alert') }),
        h('div', { class: 'notice-body' },
          h('strong', { 'data-testid': 'audit-verify-text' }, intact
            ? `Intact: ${v.rows.toLocaleString()} rows`
            : `TAMPERED at row ${v.first_broken_id}`),
          h('p', null, intact
            ? 'Every row follows from the one before it (a hash chain), so no entry was changed or removed since it was written.'
            : 'This row, or one before it, was changed or removed outside hearth. Entries from here on cannot be trusted.')));
    } catch (e) {
      if (alive) { verify.dataset.state = 'error'; setChildren(verify, errorNotice(e, { title: 'Couldn\u2019t check the log' })); }
    }
  }

  (async () => {
    try {
      const [cams, accounts] = await Promise.all([api('cameras'), api('users')]);
      camera.append(...cams.map((c) => h('option', { value: c.name }, c.name)));
      camera.value = query.camera || '';
      if (camera.value) reload();
      users.append(...accounts.map((u) => h('option', { value: u.name })));
    } catch { /* the filters still work as text */ }
  })();
  checkChain();
  reload();
  return () => { alive = false; };
}
