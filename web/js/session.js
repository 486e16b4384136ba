// Who is logged in: `GET /api/account`, and what that account may do. The hub decides every
// permission itself; the page only uses this to leave out what would be refused anyway.

import { api, auth } from './api.js';

/** The latest `GET /api/account` answer, or null while logged out. */
export const session = { me: null };

const listeners = new Set();

/** Call `fn(me)` whenever the account is (re)loaded; returns an unsubscribe. */
export function onAccount(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/**
 * Loads the account. Resolves to it, or to null when there is no session (401); other errors
 * reject.
 */
export async function loadAccount() {
  try {
    return await loadAccountReporting();
  } catch (e) {
    if (e.status === 401) {
      session.me = null;
      return null;
    }
    throw e;
  }
}

/** Ends this session on the hub, then shows the login screen. */
export async function logout() {
  try {
    await api('logout', { method: 'POST' });
  } catch (e) {
    if (e.status !== 401) throw e;
  }
  auth.generation++;
  session.me = null;
  auth.onLoggedOut?.();
}

/**
 * Something (a live stream closed with 4401) says this session or a grant may have ended:
 * ask the hub. A 401 brings the login screen (through the api hooks); otherwise the account,
 * with its current grants, is reloaded. Resolves to whether the session still stands.
 */
export async function recheckSession() {
  try {
    await loadAccountReporting();
    return true;
  } catch {
    return false;
  }
}

async function loadAccountReporting() {
  const me = await api('account');
  session.me = me;
  for (const fn of [...listeners]) {
    try { fn(me); } catch (e) { console.error(e); }
  }
  return me;
}

export const isAdmin = () => session.me?.role === 'admin';

/** Whether the account may use `permission` (live | playback | download) on `camera`. */
export function may(camera, permission) {
  if (isAdmin()) return true;
  return !!session.me?.grants?.some((g) => g.camera === camera && g[permission]);
}

/** Whether the account has `permission` on any camera. */
export function mayAny(permission) {
  if (isAdmin()) return true;
  return !!session.me?.grants?.some((g) => g[permission]);
}

/** "Firefox on Linux", "Safari on iPhone", … from a User-Agent, for the sessions list. */
export function deviceName(ua) {
  if (!ua) return 'Unknown device';
  const browser = /Edg\//.test(ua) ? 'Edge'
    : /OPR\//.test(ua) ? 'Opera'
      : /Firefox\//.test(ua) ? 'Firefox'
        : /HeadlessChrome\//.test(ua) ? 'Headless Chrome'
          : /Chromium\//.test(ua) ? 'Chromium'
            : /Chrome\//.test(ua) ? 'Chrome'
              : /Safari\//.test(ua) ? 'Safari'
                : /^curl\//.test(ua) ? 'curl'
                  : null;
  const os = /iPhone/.test(ua) ? 'iPhone'
    : /iPad/.test(ua) ? 'iPad'
      : /Android/.test(ua) ? 'Android'
        : /Windows/.test(ua) ? 'Windows'
          : /Mac OS X|Macintosh/.test(ua) ? 'macOS'
            : /CrOS/.test(ua) ? 'ChromeOS'
              : /Linux/.test(ua) ? 'Linux'
                : null;
  if (browser && os) return `${browser} on ${os}`;
  return browser || os || ua.slice(0, 60);
}
