// #/account — placeholder until the accounts milestone brings sign-in and users.

import { h } from '../util.js';
import { icon } from '../icons.js';
import { onStatus, openLockDialog } from '../lock.js';
import { pageHead } from '../ui.js';

export function mount(root) {
  const lockLine = h('p', { class: 'muted' });
  const lockBtn = h('button', { type: 'button', class: 'btn', onclick: openLockDialog });
  const version = h('span', { 'data-testid': 'hub-version' });
  const off = onStatus((s) => {
    lockLine.textContent = s.locked === false
      ? 'Recordings are unlocked on this hub: anyone who can open this page can play them.'
      : 'Recordings are locked: clips stay encrypted until someone enters the passphrase.';
    lockBtn.replaceChildren(h('span', { html: icon(s.locked === false ? 'lock' : 'unlock') }), s.locked === false ? 'Lock now' : 'Unlock');
    version.textContent = s.version ? `hearth ${s.version}` : '';
  });

  root.append(
    pageHead({ title: 'Account' }),
    h('div', { class: 'account-grid' },
      h('section', { class: 'card account-card', 'data-testid': 'account-placeholder' },
        h('div', { class: 'empty-icon', html: icon('user') }),
        h('h2', null, 'Sign-in and users arrive here'),
        h('p', { class: 'muted' },
          'A coming update adds accounts: a sign-in for this hub, separate users for your household, and a log of who watched what.'),
        h('p', { class: 'muted' },
          'Until then, anyone on your home network who can reach the hub can watch live. Recordings stay protected by your passphrase.')),
      h('section', { class: 'card account-card' },
        h('div', { class: 'empty-icon', html: icon('shield') }),
        h('h2', null, 'Privacy'),
        h('p', { class: 'muted' }, 'Everything on this page is served by your hub. No cloud, no analytics, nothing fetched from anywhere else.'),
        lockLine,
        h('div', { class: 'empty-actions' }, lockBtn),
        h('p', { class: 'muted small' }, version))));
  return off;
}
