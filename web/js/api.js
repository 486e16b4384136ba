// The hub's HTTP API (docs/reference/api.md). Every URL is relative to the page, so the UI
// also works behind a reverse proxy under a path prefix.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Who is logged in is decided by the hub (an HttpOnly cookie this page never sees). When an
 * answer says the session is gone (401) or that 2FA must be set up first, the app shell is
 * told through these hooks. `generation` counts logins, so a late 401 from a request made
 * before the latest login does not send the new session back to the login screen.
 */
export const auth = {
  generation: 0,
  /** `(generation) => void`: the session is gone. */
  onUnauthenticated: null,
  /** `(generation) => void`: this session may only set up two-factor authentication. */
  onEnrolmentRequired: null,
  /** `() => void`: the user logged out here. */
  onLoggedOut: null,
};

/** Tell the shell about an auth error answered to a request made in `generation`. */
export function reportAuthError(err, generation) {
  if (err.status === 401 && err.code === 'unauthenticated') auth.onUnauthenticated?.(generation);
  else if (err.status === 403 && err.code === 'totp_enrolment_required') auth.onEnrolmentRequired?.(generation);
}

/** Absolute URL of an API path (`cameras`, `clips/3.mp4`) with optional query params. */
export function apiUrl(path, params) {
  const url = new URL(`api/${path}`, document.baseURI);
  url.hash = '';
  if (params) {
    for (const [k, v] of Object.entries(params)) {
      if (v !== null && v !== undefined && v !== '') url.searchParams.set(k, v);
    }
  }
  return url.href;
}

/** Same-origin WebSocket URL: ws:// on http, wss:// on https. */
export function wsUrl(path) {
  const url = new URL(apiUrl(path));
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

const cam = (name) => encodeURIComponent(name);

export const urls = {
  clip: (id) => apiUrl(`clips/${encodeURIComponent(id)}.mp4`),
  snapshot: (name, t = Date.now()) => apiUrl(`cameras/${cam(name)}/snapshot.jpg`, { t }),
  live: (name) => wsUrl(`cameras/${cam(name)}/live`),
  export: (name, startIso, endIso) => apiUrl(`cameras/${cam(name)}/export.mp4`, { start: startIso, end: endIso }),
};

/** Turn a failed response into an ApiError using the `{error, message}` body when present. */
export async function errorFrom(res) {
  let code = `http_${res.status}`;
  let message = res.statusText || `HTTP ${res.status}`;
  try {
    const body = await res.json();
    if (body && typeof body === 'object') {
      if (body.error) code = body.error;
      if (body.message) message = body.message;
    }
  } catch { /* not JSON */ }
  if (res.status === 423 && code === `http_423`) code = 'locked';
  const err = new ApiError(res.status, code, message);
  // 429: how many seconds until the hub listens again.
  const retry = Number(res.headers.get('Retry-After'));
  if (retry > 0) err.retryAfter = retry;
  return err;
}

/** JSON request. Resolves to the parsed body (null for 204); rejects with ApiError. */
export async function api(path, { method = 'GET', params, body, signal } = {}) {
  const generation = auth.generation;
  let res;
  try {
    res = await fetch(apiUrl(path, params), {
      method,
      signal,
      headers: body !== undefined ? { 'Content-Type': 'application/json' } : undefined,
      body: body !== undefined ? JSON.stringify(body) : undefined,
      cache: 'no-store',
      credentials: 'same-origin',
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'Check that the hub is powered on and connected to your network.');
  }
  if (!res.ok) {
    const err = await errorFrom(res);
    if (path !== 'login') reportAuthError(err, generation);
    throw err;
  }
  if (res.status === 204) return null;
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(res.status, 'bad_response', 'The hub sent an answer this page does not understand.');
  }
}

/**
 * Why a media URL (clip, export) fails, without downloading it: a one-byte range request.
 * Resolves to null when it would play, else an ApiError (423 locked, 404 gone, …).
 */
export async function probeMedia(url) {
  const generation = auth.generation;
  let res;
  try {
    res = await fetch(url, { headers: { Range: 'bytes=0-0' }, cache: 'no-store' });
  } catch {
    return new ApiError(0, 'network', "Can't reach the hub.");
  }
  if (res.ok) {
    res.body?.cancel?.().catch(() => {});
    return null;
  }
  const err = await errorFrom(res);
  reportAuthError(err, generation);
  return err;
}
