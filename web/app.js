// hearth web UI: the app shell (header, navigation, lock badge) and the hash router.
// Every page module exports `mount(root, {params, query}) → cleanup`.

import { h } from './js/util.js';
import { icon } from './js/icons.js';
import { lockBadge, onStatus, refreshStatus } from './js/lock.js';
import * as camerasPage from './js/pages/cameras.js';
import * as cameraPage from './js/pages/camera.js';
import * as timelinePage from './js/pages/timeline.js';
import * as clipsPage from './js/pages/clips.js';
import * as storagePage from './js/pages/storage.js';
import * as accountPage from './js/pages/account.js';
import * as notFoundPage from './js/pages/notfound.js';

const routes = [
  { re: /^\/?$/, page: camerasPage, nav: 'cameras', title: 'Cameras' },
  { re: /^\/camera\/([^/]+)\/timeline\/?$/, page: timelinePage, nav: 'cameras', keys: ['name'], title: 'Timeline' },
  { re: /^\/camera\/([^/]+)\/?$/, page: cameraPage, nav: 'cameras', keys: ['name'], title: 'Live' },
  { re: /^\/clips\/?$/, page: clipsPage, nav: 'clips', title: 'Clips' },
  { re: /^\/storage\/?$/, page: storagePage, nav: 'storage', title: 'Storage' },
  { re: /^\/account\/?$/, page: accountPage, nav: 'account', title: 'Account' },
];

const navItems = [
  { id: 'cameras', href: '#/', label: 'Cameras', icon: 'grid' },
  { id: 'clips', href: '#/clips', label: 'Clips', icon: 'film' },
  { id: 'storage', href: '#/storage', label: 'Storage', icon: 'storage' },
  { id: 'account', href: '#/account', label: 'Account', icon: 'user' },
];

function navLinks(cls) {
  return navItems.map((n) => h('a', { href: n.href, class: cls, 'data-nav': n.id, 'data-testid': `nav-${n.id}` },
    h('span', { html: icon(n.icon) }), h('span', { class: 'nav-label' }, n.label)));
}

const main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
const banner = h('div', { class: 'conn-banner', role: 'status', 'data-testid': 'connection-banner', hidden: true });

function shell() {
  const header = h('header', { class: 'topbar' },
    h('div', { class: 'topbar-inner' },
      h('a', { href: '#/', class: 'brand', 'aria-label': 'hearth — cameras' },
        h('span', { class: 'brand-mark', html: icon('logo') }), h('span', { class: 'brand-name' }, 'hearth')),
      h('nav', { class: 'topnav', 'aria-label': 'Main' }, navLinks('topnav-link')),
      h('div', { class: 'topbar-end' }, lockBadge())));
  const tabbar = h('nav', { class: 'tabbar', 'aria-label': 'Main (bottom)' }, navLinks('tab-link'));
  const skip = h('a', { href: '#main', class: 'skip-link', onclick: (ev) => { ev.preventDefault(); main.focus(); } }, 'Skip to content');
  const app = document.getElementById('app');
  app.replaceChildren(skip, header, banner, main, tabbar);
}

let cleanup = null;
let currentPath = null;

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, qs = ''] = raw.split('?');
  return { path, query: Object.fromEntries(new URLSearchParams(qs)) };
}

function route() {
  const { path, query } = parseHash();
  let match = null;
  let params = {};
  for (const r of routes) {
    const m = path.match(r.re);
    if (m) {
      match = r;
      (r.keys || []).forEach((k, i) => {
        try { params[k] = decodeURIComponent(m[i + 1]); } catch { params[k] = m[i + 1]; }
      });
      break;
    }
  }
  if (!match) match = { page: notFoundPage, nav: null, title: 'Not found' };

  if (cleanup) {
    try { cleanup(); } catch (e) { console.error(e); }
    cleanup = null;
  }
  main.replaceChildren();
  const root = h('div', { class: 'page', 'data-page': match.nav || 'notfound' });
  main.append(root);
  document.querySelectorAll('[data-nav]').forEach((a) => {
    if (a.dataset.nav === match.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  });
  document.title = `${params.name ? `${params.name} · ` : ''}${match.title} · hearth`;
  try {
    cleanup = match.page.mount(root, { params, query }) || null;
  } catch (e) {
    console.error(e);
    root.append(h('div', { class: 'notice error' }, `This page failed to load: ${e.message}`));
  }
  if (currentPath !== null && currentPath !== path) {
    window.scrollTo(0, 0);
    const heading = root.querySelector('h1');
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
  }
  currentPath = path;
}

function watchConnection() {
  onStatus((s) => {
    if (s.error) {
      banner.hidden = false;
      banner.replaceChildren(h('span', { html: icon('alert') }),
        h('span', null, s.error.status === 0 ? 'Can\u2019t reach the hub \u2014 retrying\u2026' : `The hub answered with an error: ${s.error.message}`));
    } else {
      banner.hidden = true;
    }
  });
  const poll = () => refreshStatus().finally(() => setTimeout(poll, status_interval()));
  const status_interval = () => (document.hidden ? 60_000 : 10_000);
  poll();
  document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshStatus(); });
}

shell();
watchConnection();
window.addEventListener('hashchange', route);
route();
