// #/connections (admins) — what the hub itself connects to: the open outbound connections
// from its own bookkeeping, the only places it may connect to (the configured cameras), and
// the networks it answers.

import { api } from '../api.js';
import { h, every, setChildren, fmtSince, loading } from '../util.js';
import { errorNotice, emptyState, pageHead, adminTabs, table } from '../ui.js';

export function mount(root) {
  const body = h('div', { class: 'connections' }, loading('Loading connections\u2026'));
  root.append(
    pageHead({ title: 'Connections', subtitle: 'hearth only connects to your cameras. Nothing goes to the internet.' }),
    adminTabs('connections'), body);

  async function refresh() {
    let c;
    try {
      c = await api('connections');
    } catch (e) {
      setChildren(body, errorNotice(e, { title: 'Couldn\u2019t load connections', onRetry: refresh }));
      return;
    }
    const open = c.open.length
      ? h('div', { class: 'card table-card' }, table([['Purpose'], ['For'], ['Remote address'], ['Open since']],
        c.open.map((o) => h('tr', { 'data-testid': 'connection-row', 'data-owner': o.owner },
          h('td', null, o.purpose === 'camera' ? 'Camera stream (RTSP)' : o.purpose),
          h('td', null, o.owner), h('td', { class: 'mono' }, o.remote), h('td', null, fmtSince(o.since_us / 1000)))),
        { 'data-testid': 'connections-open' }))
      : emptyState({ iconName: 'camera', title: 'No open connections', text: 'No camera is connected right now.', testid: 'connections-none' });
    setChildren(body,
      h('section', { class: 'section' }, h('h2', { class: 'section-title' }, `Open now (${c.open.length})`), open),
      h('div', { class: 'admin-columns' },
        h('section', { class: 'card' },
          h('div', { class: 'card-head' }, h('h2', null, 'Where hearth may connect')),
          h('p', { class: 'muted small' }, 'Only to the cameras in its configuration: no cloud, no update checks, no telemetry.'),
          h('ul', { class: 'plain-list', 'data-testid': 'connections-allowed' },
            c.allowed.map((a) => h('li', null, h('strong', null, a.name), ' ', h('span', { class: 'mono' }, a.address))))),
        h('section', { class: 'card' },
          h('div', { class: 'card-head' }, h('h2', null, 'Who may connect to hearth')),
          h('p', { class: 'muted small' }, 'Devices on these networks may open the login page (web.allowed_networks); every other address is refused.'),
          h('ul', { class: 'plain-list mono', 'data-testid': 'connections-networks' }, c.allowed_networks.map((n) => h('li', null, n))))));
  }

  return every(5000, refresh);
}
