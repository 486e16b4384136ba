// The browser tests' harness: no mocks. GStreamer's RTSP server (tests/support/rtsp_server.py)
// is the camera, the dev build of hearth (`target/debug/hearth`, built by `cargo build`) records
// it into a temporary data dir and serves the UI, and Debian's Chromium (/usr/bin/chromium)
// drives the UI through playwright-core. Everything listens on 127.0.0.1 only.
//
// Environment:
// - HEARTH_BIN: the hearth binary (default target/debug/hearth).
// - HEARTH_TEST_PYTHON: the interpreter with GStreamer's gi bindings (default /usr/bin/python3).
// - HEARTH_CHROMIUM: the browser (default /usr/bin/chromium).

import { spawn, execFile } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ARTIFACTS = join(ROOT, 'tests', 'artifacts');
export const HEARTH_BIN = process.env.HEARTH_BIN || join(ROOT, 'target', 'debug', 'hearth');
const PYTHON = process.env.HEARTH_TEST_PYTHON || '/usr/bin/python3';
const CHROMIUM = process.env.HEARTH_CHROMIUM || '/usr/bin/chromium';
const RTSP_SERVER = join(ROOT, 'tests', 'support', 'rtsp_server.py');
/** The hub's passphrase (recordings unlocked with it at start-up). */
export const PASSPHRASE = 'browser test passphrase';
/** The hub's owner (first admin), created by `hearth init`. */
export const OWNER = { name: 'owner', password: 'owner password for browser tests' };

// Every process and temp dir we made, so that even an interrupted run leaves nothing behind.
const children = new Set();
const tempDirs = new Set();
function cleanupNow() {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
  for (const d of tempDirs) {
    try { rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ }
  }
}
process.on('exit', cleanupNow);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => { cleanupNow(); process.exit(128 + (sig === 'SIGINT' ? 2 : 15)); });
}

/** Our environment plus `extra`, without HEARTH_CONFIG (the tests name their config). */
function childEnv(extra = {}) {
  const env = { ...process.env, ...extra };
  delete env.HEARTH_CONFIG;
  return env;
}

/** Spawns a child that is killed when this process exits; output appended to `logPath`. */
function spawnTracked(cmd, args, { env, logPath, stdin = 'ignore' } = {}) {
  const child = spawn(cmd, args, { env: childEnv(env), stdio: [stdin, 'pipe', 'pipe'] });
  children.add(child);
  child.exited = new Promise((res) => child.once('exit', (code, signal) => { children.delete(child); res({ code, signal }); }));
  child.log = '';
  const file = logPath ? createWriteStream(logPath, { flags: 'a' }) : null;
  const onData = (d) => {
    const s = d.toString();
    child.log += s;
    if (child.log.length > 200_000) child.log = child.log.slice(-100_000);
    file?.write(s);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  child.once('exit', () => file?.end());
  return child;
}

/** Resolves with the first match of `re` in the child's output, or rejects on exit/timeout. */
async function waitForOutput(child, re, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = child.log.match(re);
    if (m) return m;
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${child.log}`);
    }
    if (Date.now() > deadline) throw new Error(`${what} not ready within ${timeoutMs} ms:\n${child.log}`);
    await sleep(50);
  }
}

/** SIGTERM, then SIGKILL after `graceMs`. Resolves once the process is gone. */
export async function stopProcess(child, graceMs = 10_000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = sleep(graceMs).then(() => 'timeout');
  if ((await Promise.race([child.exited, timer])) === 'timeout') {
    child.kill('SIGKILL');
    await child.exited;
  }
}

/**
 * GStreamer's RTSP server on a free port: `{child, url}`. Dies with us (stdin EOF). `args`:
 * more options (e.g. `['--scene', 'motion', '--scene-log', FILE]`).
 */
export async function startRtspServer(logPath, args = []) {
  const child = spawnTracked(PYTHON, [RTSP_SERVER, '--port', '0', '--path', '/cam', '--exit-on-stdin-eof', ...args],
    { logPath, stdin: 'pipe' });
  const m = await waitForOutput(child, /^READY (rtsp:\/\/127\.0\.0\.1:\d+\/\S+)$/m, 20_000,
    `${RTSP_SERVER} (run \`make deps\`: it needs python3-gi and GStreamer's RTSP server)`);
  return { child, url: m[1] };
}

/**
 * `hearth init` in a temp dir (with the owner account OWNER), a config recording `cameraUrl`
 * as each of `cameras` (default just "door") in 4-second clips with the web UI on a free
 * loopback port, then `hearth serve` with the passphrase (playback unlocked). A camera is a
 * name, or `{name, url?, extra?}` with its own stream and more of its `[[camera]]` table as
 * TOML (`hook_token = "…"`, `[camera.motion]`). Returns `{child, dir, dataDir, config, base,
 * api}`; `base` is `http://127.0.0.1:PORT/`, `api` an API client logged in as the owner.
 */
export async function startHub(cameraUrl, { cameras = ['door'] } = {}) {
  if (!existsSync(HEARTH_BIN)) throw new Error(`${HEARTH_BIN} is missing: run \`cargo build\` first`);
  const dir = await mkdtemp(join(tmpdir(), 'hearth-browser-'));
  tempDirs.add(dir);
  const dataDir = join(dir, 'data');
  const passphraseFile = join(dir, 'passphrase');
  const ownerPasswordFile = join(dir, 'owner-password');
  await writeFile(passphraseFile, PASSPHRASE, { mode: 0o600 });
  await writeFile(ownerPasswordFile, OWNER.password, { mode: 0o600 });
  await run(HEARTH_BIN, ['init', '--data-dir', dataDir, '--passphrase-file', passphraseFile,
    '--owner', OWNER.name, '--owner-password-file', ownerPasswordFile]);

  const config = join(dataDir, 'config.toml');
  let text = await readFile(config, 'utf8');
  if (!text.includes('listen = "127.0.0.1:8080"')) throw new Error(`unexpected generated config:\n${text}`);
  text = text.replace('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1:0"');
  // Short clips so a few exist within seconds; a small budget so the storage bars show a fill
  // (and the disk is never smaller than the budget).
  text = text.replace(/^\[storage\]\n(?:(?!\[)[^\n]*\n)*/m, '[storage]\nclip_seconds = 4\nmax_bytes = "100MB"\nmax_age_days = 30\n\n');
  for (const cam of cameras) {
    const { name, url = cameraUrl, extra = '' } = typeof cam === 'string' ? { name: cam } : cam;
    text += `\n[[camera]]\nname = "${name}"\nurl = "${url}"\n${extra ? `${extra.trimEnd()}\n` : ''}`;
  }
  await writeFile(config, text);

  const child = spawnTracked(HEARTH_BIN, ['--config', config, 'serve'], {
    env: { HEARTH_PASSPHRASE_FILE: passphraseFile, HEARTH_LOG: 'info' },
    logPath: join(dir, 'serve.log'),
  });
  const m = await waitForOutput(child, /web UI at (http:\/\/127\.0\.0\.1:\d+\/)/, 30_000, 'hearth serve');
  const base = m[1];
  const api = await apiClient(base, OWNER.name, OWNER.password);
  return { child, dir, dataDir, config, base, api };
}

/** `hearth --config … ARGS` of a running hub (e.g. `user add`, `audit verify`). */
export function hearthCli(hub, args) {
  return run(HEARTH_BIN, ['--config', hub.config, ...args]);
}

/**
 * The API from node, logged in as `username` (the session cookie kept by hand): `get(path)`
 * resolves to the parsed JSON and rejects on an error status; `request(method, path, body)`
 * resolves to the Response whatever its status.
 */
export async function apiClient(base, username, password, totp) {
  const res = await fetch(new URL('api/login', base), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password, totp }),
  });
  if (!res.ok) throw new Error(`login as ${username}: HTTP ${res.status} ${await res.text()}`);
  const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]).find((c) => c.startsWith('hearth_session='));
  if (!cookie) throw new Error(`login as ${username}: no session cookie`);
  const request = (method, path, body) => fetch(new URL(path, base), {
    method,
    cache: 'no-store',
    headers: { Cookie: cookie, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const json = async (method, path, body) => {
    const r = await request(method, path, body);
    if (!r.ok) throw new Error(`${method} ${path}: HTTP ${r.status} ${await r.text()}`);
    return r.status === 204 ? null : r.json();
  };
  return {
    cookie,
    request,
    get: (path) => json('GET', path),
    post: (path, body) => json('POST', path, body),
    put: (path, body) => json('PUT', path, body),
  };
}

/** Runs a command to completion; rejects with its output on failure. */
export function run(cmd, args, { timeoutMs = 60_000 } = {}) {
  return new Promise((res, rej) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20, env: childEnv() }, (err, stdout, stderr) => {
      if (err) rej(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
      else res({ stdout, stderr });
    });
  });
}

/** GET `path` as the hub's owner. */
export function getJson(hub, path) {
  return hub.api.get(path);
}

/** Waits until the hub has indexed at least `n` closed clips; returns them. */
export async function waitForClips(hub, n, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (hub.child.exitCode !== null || hub.child.signalCode !== null) throw new Error(`hearth serve died:\n${hub.child.log}`);
    const clips = await getJson(hub, 'api/clips').catch(() => []);
    if (clips.length >= n) return clips;
    if (Date.now() > deadline) throw new Error(`fewer than ${n} clips after ${timeoutMs} ms:\n${hub.child.log}`);
    await sleep(250);
  }
}

export async function removeDir(dir) {
  if (!dir) return;
  await rm(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
  });
}

/**
 * A fresh context and page on the hub, logged in as `login` (default the owner; null: not
 * logged in), recording every URL the page asks for (HTTP requests,
 * WebSockets) and every uncaught script error. `assertLocalOnly()` fails if any of them went
 * anywhere but 127.0.0.1.
 */
export async function openPage(browser, base, contextOptions = {}, { login = OWNER } = {}) {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 800 }, ...contextOptions });
  if (login) {
    // The session cookie lands in the context's cookie jar, as after the login form.
    const res = await context.request.post(new URL('api/login', base).href, { data: { username: login.name, password: login.password } });
    if (!res.ok()) throw new Error(`login as ${login.name}: HTTP ${res.status()} ${await res.text()}`);
  }
  const page = await context.newPage();
  const urls = [];
  const pageErrors = [];
  const consoleErrors = [];
  context.on('request', (r) => urls.push(r.url()));
  page.on('websocket', (ws) => urls.push(ws.url()));
  page.on('pageerror', (e) => pageErrors.push(String(e?.stack || e)));
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.setDefaultTimeout(20_000);
  return {
    context,
    page,
    urls,
    pageErrors,
    consoleErrors,
    goto: (hash) => page.goto(new URL(hash, base).href),
    /** Every network URL the page used points at 127.0.0.1 (data: and blob: are in-page). */
    externalUrls() {
      return urls.filter((u) => {
        let url;
        try { url = new URL(u); } catch { return true; }
        if (url.protocol === 'data:') return false;
        if (url.protocol === 'blob:') {
          try { url = new URL(url.pathname); } catch { return true; }
        }
        return url.hostname !== '127.0.0.1';
      });
    },
    close: () => context.close(),
  };
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** `YYYY-MM-DDTHH:MM` in local time, for <input type="datetime-local">. */
export function localInput(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
