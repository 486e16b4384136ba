// hearth web UI: the app shell (header, navigation, lock badge), the hash router, and which
// of three screens shows: the login form, the 2FA set-up an admin requires, or the app.
// Every page module exports `mount(root, {params, query}) → cleanup`.

import { h } from './js/util.js';
import { icon } from './js/icons.js';
import { auth } from './js/api.js';
import { session, loadAccount, isAdmin, mayAny, logout } from './js/session.js';
import { loginScreen, enrolScreen } from './js/login.js';
import { lockBadge, onStatus, refreshStatus } from './js/lock.js';
import { startLiveEvents, stopLiveEvents } from './js/events.js';
import * as camerasPage from './js/pages/cameras.js';
import * as cameraPage from './js/pages/camera.js';
import * as timelinePage from './js/pages/timeline.js';
import * as clipsPage from './js/pages/clips.js';
import * as eventsPage from './js/pages/events.js';
import * as storagePage from './js/pages/storage.js';
import * as accountPage from './js/pages/account.js';
import * as usersPage from './js/pages/users.js';
import * as auditPage from './js/pages/audit.js';
import * as connectionsPage from './js/pages/connections.js';
import * as notFoundPage from './js/pages/notfound.js';

// `admin`: only for admins (the hub refuses the rest anyway); the nav leaves them out too.
const routes = [
  { re: /^\/?$/, page: camerasPage, nav: 'cameras', title: 'Cameras' },
  { re: /^\/camera\/([^/]+)\/timeline\/?$/, page: timelinePage, nav: 'cameras', keys: ['name'], title: 'Timeline' },
  { re: /^\/camera\/([^/]+)\/?$/, page: cameraPage, nav: 'cameras', keys: ['name'], title: 'Live' },
  { re: /^\/events\/?$/, page: eventsPage, nav: 'events', title: 'Events' },
  { re: /^\/clips\/?$/, page: clipsPage, nav: 'clips', title: 'Clips' },
  { re: /^\/storage\/?$/, page: storagePage, nav: 'storage', title: 'Storage', admin: true },
  { re: /^\/account\/?$/, page: accountPage, nav: 'account', title: 'Account' },
  { re: /^\/users\/?$/, page: usersPage, nav: 'admin', title: 'Users', admin: true },
  { re: /^\/audit\/?$/, page: auditPage, nav: 'admin', title: 'Audit log', admin: true },
  { re: /^\/connections\/?$/, page: connectionsPage, nav: 'admin', title: 'Connections', admin: true },
];

const navItems = [
  { id: 'cameras', href: '#/', label: 'Cameras', icon: 'grid' },
  { id: 'events', href: '#/events', label: 'Events', icon: 'bell' },
  { id: 'clips', href: '#/clips', label: 'Clips', icon: 'film', show: () => mayAny('playback') || mayAny('download') },
  { id: 'storage', href: '#/storage', label: 'Storage', icon: 'storage', show: isAdmin },
  { id: 'admin', href: '#/users', label: 'Admin', icon: 'shield', show: isAdmin },
  { id: 'account', href: '#/account', label: 'Account', icon: 'user' },
];

function navLinks(cls) {
  return navItems.filter((n) => !n.show || n.show()).map((n) => h('a', { href: n.href, class: cls, 'data-nav': n.id, 'data-testid': `nav-${n.id}` },
    h('span', { html: icon(n.icon) }), h('span', { class: 'nav-label' }, n.label)));
}

const app = document.getElementById('app');
const main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
const banner = h('div', { class: 'conn-banner', role: 'status', 'data-testid': 'connection-banner', hidden: true });

function shell() {
  const me = session.me;
  const header = h('header', { class: 'topbar' },
    h('div', { class: 'topbar-inner' },
      h('a', { href: '#/', class: 'brand', 'aria-label': 'hearth — cameras' },
        h('span', { class: 'brand-mark', html: icon('logo') }), h('span', { class: 'brand-name' }, 'hearth')),
      h('nav', { class: 'topnav', 'aria-label': 'Main' }, navLinks('topnav-link')),
      h('div', { class: 'topbar-end' },
        // Only admins can unlock or lock playback.
        isAdmin() ? lockBadge() : null,
        h('a', { href: '#/account', class: 'user-chip', 'data-testid': 'current-user', 'data-role': me.role, title: `Logged in as ${me.name}` },
          h('span', { html: icon('user') }), h('span', { class: 'user-chip-name' }, me.name)))));
  const tabbar = h('nav', { class: 'tabbar', 'aria-label': 'Main (bottom)' }, navLinks('tab-link'));
  const skip = h('a', { href: '#main', class: 'skip-link', onclick: (ev) => { ev.preventDefault(); main.focus(); } }, 'Skip to content');
  app.replaceChildren(skip, header, banner, main, tabbar);
}

// ---------- the router (only while the app screen shows) ----------

let mode = 'starting'; // 'starting' | 'login' | 'enrol' | 'app'
let cleanup = null;
let currentPath = null;

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, qs = ''] = raw.split('?');
  return { path, query: Object.fromEntries(new URLSearchParams(qs)) };
}

function unmountPage() {
  if (cleanup) {
    try { cleanup(); } catch (e) { console.error(e); }
    cleanup = null;
  }
}

function route() {
  if (mode !== 'app') return;
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
  if (!match || (match.admin && !isAdmin())) match = { page: notFoundPage, nav: null, title: 'Not found' };

  unmountPage();
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

// ---------- hub status (lock state, reachability), polled while the app shows ----------

let statusTimer = null;

function watchConnection() {
  onStatus((s) => {
    // A 401 is not a connection problem: the login screen takes over.
    if (s.error && s.error.status !== 401 && s.error.status !== 403) {
      banner.hidden = false;
      banner.replaceChildren(h('span', { html: icon('alert') }),
        h('span', null, s.error.status === 0 ? 'Can\u2019t reach the hub \u2014 retrying\u2026' : `The hub answered with an error: ${s.error.message}`));
    } else {
      banner.hidden = true;
    }
  });
  const interval = () => (document.hidden ? 60_000 : 10_000);
  // One chain of polls: a poll started anew (the app shown again) retires the older chain.
  let chain = 0;
  const poll = () => {
    if (mode !== 'app') return;
    const mine = ++chain;
    Promise.all([refreshStatus(), refreshAccount()]).finally(() => {
      if (mine !== chain || mode !== 'app') return;
      clearTimeout(statusTimer);
      statusTimer = setTimeout(poll, interval());
    });
  };
  document.addEventListener('visibilitychange', () => { if (!document.hidden && mode === 'app') refreshStatus(); });
  return poll;
}

/**
 * Grants and roles change while people are logged in: reload the account with the status, and
 * rebuild the shell when what the navigation offers changed.
 */
async function refreshAccount() {
  const before = session.me;
  let me;
  try {
    me = await loadAccount();
  } catch {
    return; // unreachable: the status banner says so
  }
  if (!me || mode !== 'app') return;
  if (me.must_enroll_totp) {
    showEnrol();
  } else if (me.role !== before?.role || navLinks('').length !== document.querySelectorAll('.topnav [data-nav]').length) {
    showApp();
  }
}

const pollStatus = watchConnection();

// ---------- screens ----------

let screen = null; // the login screen's controller, while it shows

function leaveApp() {
  unmountPage();
  stopLiveEvents();
  clearTimeout(statusTimer);
  screen?.destroy?.();
  screen = null;
  currentPath = null;
}

/** The login form; after login, the page the user was on (the hash is kept). */
function showLogin(notice) {
  leaveApp();
  mode = 'login';
  session.me = null;
  document.title = 'Log in · hearth';
  screen = loginScreen({
    notice,
    onLoggedIn: () => {
      auth.generation++;
      start();
    },
  });
  app.replaceChildren(screen.el);
}

function showEnrol() {
  leaveApp();
  mode = 'enrol';
  document.title = 'Set up two-factor authentication · hearth';
  app.replaceChildren(enrolScreen({
    name: session.me?.name || '',
    onDone: () => start(),
    onLogout: () => logout(),
  }));
}

function showApp() {
  leaveApp();
  mode = 'app';
  shell();
  pollStatus();
  // Events as they happen (toasts, notifications), while the app shows.
  startLiveEvents();
  route();
}

/** Asks the hub who we are and shows the matching screen. */
async function start() {
  if (mode !== 'app') mode = 'starting';
  let me;
  try {
    me = await loadAccount();
  } catch (e) {
    leaveApp();
    mode = 'error';
    app.replaceChildren(h('main', { class: 'auth-screen' }, h('div', { class: 'auth-card card' },
      h('h1', null, 'hearth'),
      h('p', { class: 'form-error', role: 'alert', 'data-testid': 'start-error' },
        e.status === 0 ? 'Can\u2019t reach the hub. Check that it is powered on and on your network.' : e.message),
      h('button', { type: 'button', class: 'btn', onclick: () => start() }, 'Try again'))));
    return;
  }
  if (!me) showLogin();
  else if (me.must_enroll_totp) showEnrol();
  else showApp();
}

auth.onUnauthenticated = (generation) => {
  // While starting, start() itself shows the login form.
  if (generation !== auth.generation || mode === 'login' || mode === 'starting') return;
  showLogin('Your session has ended (logged out, or the password changed on another device). Log in again.');
};
auth.onLoggedOut = () => {
  showLogin('You have logged out.');
  history.replaceState(null, '', '#/');
};
auth.onEnrolmentRequired = (generation) => {
  if (generation !== auth.generation || mode === 'enrol') return;
  start();
};

window.addEventListener('hashchange', route);
start();
