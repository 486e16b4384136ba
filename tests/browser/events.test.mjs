// Events in a real browser against a real hub: a doorbell (the webhook, called from here with
// the camera's token) rings as a toast on the open page and lands in the events list with its
// thumbnail, and clicking it plays the recording from just before; motion (GStreamer's scripted
// scene: a box crossing a static picture, seen by the hub's detector) shows as marks on the
// timeline and rows in the list; a viewer sees nothing of a camera they have no grant on, and
// logging out closes the live feed. No mocks.
//
// Run: `cargo build && node --test tests/browser/`.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ARTIFACTS, PASSPHRASE, apiClient, launchBrowser, openPage, removeDir, screenshot, startHub, startRtspServer, stopProcess,
} from './harness.mjs';

const DOOR_TOKEN = 'door-bell-token-0123456789';
const YARD_TOKEN = 'yard-gate-token-0123456789';
const VIEWER = { name: 'neighbour', password: 'neighbour password 1' };
const PRE_ROLL_MS = 5000;

let door = null; // the ball pattern: recorded, rung
let yard = null; // the motion scene: a box crosses after a few seconds
let hub = null;
let browser = null;
let sceneLog = null;

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  sceneLog = join(ARTIFACTS, 'events-scene.log');
  await writeFile(sceneLog, '');
  [door, yard] = await Promise.all([
    startRtspServer(join(ARTIFACTS, 'rtsp-server-events-door.log')),
    startRtspServer(join(ARTIFACTS, 'rtsp-server-events-yard.log'),
      ['--scene', 'motion', '--scene-start', '8', '--scene-log', sceneLog]),
  ]);
  hub = await startHub(door.url, {
    cameras: [
      { name: 'door', extra: `hook_token = "${DOOR_TOKEN}"` },
      { name: 'yard', url: yard.url, extra: `hook_token = "${YARD_TOKEN}"\n[camera.motion]\nfps = 5` },
    ],
  });
  browser = await launchBrowser();
  await hub.api.post('api/users', {
    name: VIEWER.name, password: VIEWER.password, role: 'viewer', grants: [{ camera: 'door', live: true, playback: true }],
  });
  await until(async () => {
    const cams = await hub.api.get('api/cameras');
    return cams.length === 2 && cams.every((c) => c.status === 'online');
  }, 30_000, 'both cameras online');
}, { timeout: 90_000 });

after(async () => {
  await browser?.close().catch(() => {});
  await stopProcess(hub?.child);
  await stopProcess(door?.child);
  await stopProcess(yard?.child);
  if (hub) {
    await copyFile(join(hub.dir, 'serve.log'), join(ARTIFACTS, 'hearth-serve-events.log')).catch(() => {});
    await removeDir(hub.dir);
  }
}, { timeout: 30_000 });

/** Polls `fn` until it returns something truthy; returns that. */
async function until(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${hub?.child.log.slice(-4000)}`);
    await sleep(200);
  }
}

/** A doorbell press on `camera`, as the device makes it: resolves to the event id. */
async function ring(camera, token) {
  const res = await fetch(new URL(`api/hooks/${camera}/doorbell`, hub.base), {
    method: 'POST', headers: { Authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 202, await res.clone().text());
  return (await res.json()).id;
}

/** Until a closed clip of `camera` holds the instant `ms`. */
function recordedAt(camera, ms) {
  return until(async () => {
    const clips = await hub.api.get(`api/clips?camera=${camera}`);
    return clips.find((c) => c.start_us <= ms * 1000 && c.end_us > ms * 1000);
  }, 20_000, `a clip of ${camera} at ${new Date(ms).toISOString()}`);
}

/** The instant (ms) the timeline page is playing, from its clip and the video's position. */
async function playingAt(page) {
  await page.locator('[data-testid="player"][data-playing="true"]').waitFor();
  await page.waitForFunction(() => document.querySelector('[data-testid="playback-video"]').currentTime > 0);
  const { clip, offset } = await page.evaluate(() => ({
    clip: Number(document.querySelector('[data-testid="player"]').dataset.clip),
    offset: document.querySelector('[data-testid="playback-video"]').currentTime,
  }));
  const clips = await hub.api.get('api/clips');
  const c = clips.find((x) => x.id === clip);
  assert.ok(c, `clip ${clip} is listed`);
  return c.start_us / 1000 + offset * 1000;
}

/** No script errors, no CSP violations, nothing loaded from anywhere but the hub. */
function checkPage(p) {
  assert.deepEqual(p.externalUrls(), [], 'the UI must load nothing from outside the hub');
  assert.deepEqual(p.pageErrors, [], 'uncaught errors in the page');
  assert.deepEqual(p.consoleErrors.filter((e) => /Content Security Policy/i.test(e)), [], 'CSP violations');
}

const feedOpen = (page) => page.locator('html[data-events-feed="open"]').waitFor({ state: 'attached' });

test('a doorbell press rings on the open page, is listed with its thumbnail and plays from before it', { timeout: 60_000 }, async () => {
  const p = await openPage(browser, hub.base);
  try {
    const { page } = p;
    await p.goto('#/');
    await feedOpen(page);
    // Enough recorded that the pre-roll before the press is on disk.
    await until(async () => (await hub.api.get('api/clips?camera=door')).length >= 2, 20_000, 'two clips of door');

    const pressed = Date.now();
    const id = await ring('door', DOOR_TOKEN);
    const toast = page.locator(`[data-testid="event-toast"][data-event-id="${id}"]`);
    await toast.waitFor({ timeout: 2500 });
    const latency = Date.now() - pressed;
    assert.ok(latency < 2500, `the toast showed ${latency} ms after the press`);
    assert.equal(await toast.getAttribute('data-kind'), 'doorbell');
    assert.equal(await toast.getAttribute('data-camera'), 'door');
    assert.match(await toast.getAttribute('class'), /is-doorbell/, 'a doorbell toast stands out');
    assert.match(await toast.locator('[data-testid="toast-title"]').innerText(), /door/);
    // The thumbnail follows (a JPEG of the camera's latest keyframe, decrypted by the hub).
    await toast.locator('[data-testid="event-thumbnail"][data-state="loaded"] img').waitFor();
    assert.ok(await toast.locator('img').evaluate((img) => img.naturalWidth > 0));
    await screenshot(page, 'event-toast-doorbell');

    // The events page: the press on top, with its picture; notifications asked for on a click.
    await page.locator('[data-testid="nav-events"]').first().click();
    const row = page.locator(`[data-testid="event-row"][data-event-id="${id}"]`);
    await row.waitFor();
    const times = await page.locator('[data-testid="event-time"]').evaluateAll((ts) => ts.map((t) => Date.parse(t.getAttribute('datetime'))));
    assert.deepEqual(times, [...times].sort((x, y) => y - x), 'newest first');
    assert.equal(await row.getAttribute('data-kind'), 'doorbell');
    assert.equal(await row.locator('[data-testid="event-camera"]').innerText(), 'door');
    assert.match(await row.locator('[data-testid="event-kind"]').innerText(), /Doorbell/);
    await row.locator('[data-testid="event-thumbnail"][data-state="loaded"]').waitFor();
    assert.ok(await row.locator('img').evaluate((img) => img.complete && img.naturalWidth > 0), 'thumbnail loaded');
    assert.equal(await row.locator('[data-testid="event-duration"]').count(), 0, 'a press has no duration');
    // Browser notifications: never asked for on load; allowed in the browser (as its prompt
    // would), they are on; the switch turns them off here, and that sticks.
    const control = page.locator('.notify-control');
    const toggle = page.locator('[data-testid="notify-toggle"]');
    assert.equal(await control.getAttribute('data-state'), 'off');
    assert.match(await toggle.innerText(), /Turn on/);
    assert.equal(await page.evaluate(() => Notification.permission), 'default', 'nothing asked on load');
    await p.context.grantPermissions(['notifications'], { origin: new URL(hub.base).origin });
    await page.locator('.notify-control[data-state="on"]').waitFor();
    await toggle.click();
    await page.locator('.notify-control[data-state="off"]').waitFor();
    await page.reload();
    await row.waitFor();
    assert.equal(await control.getAttribute('data-state'), 'off');
    await toggle.click();
    await page.locator('.notify-control[data-state="on"]').waitFor();
    assert.match(await toggle.innerText(), /Turn off/);
    await screenshot(page, 'events-list');

    // Clicking it plays the door's recording from the pre-roll before the press.
    const event = (await hub.api.get('api/events?camera=door&kind=doorbell')).find((e) => e.id === id);
    assert.ok(event, 'the API lists the press');
    await recordedAt('door', event.start_us / 1000 - PRE_ROLL_MS);
    await row.locator('[data-testid="event-play"]').click();
    await page.waitForURL(/#\/camera\/door\/timeline\?/);
    const at = await playingAt(page);
    const target = event.start_us / 1000 - PRE_ROLL_MS;
    assert.ok(at >= target - 1000 && at <= target + 4000, `playing ${Math.round(at - target)} ms from the pre-roll`);
    // The press is a pin on the timeline.
    const mark = page.locator(`[data-testid="timeline-event"][data-event-id="${id}"]`);
    await mark.waitFor();
    assert.match(await mark.getAttribute('class'), /is-point/);
    await screenshot(page, 'event-timeline-doorbell');
    checkPage(p);
  } finally {
    await p.close();
  }
});

test('motion shows as marks on the timeline and rows in the list', { timeout: 60_000 }, async () => {
  // The box crosses once; the hub's detector makes one event of it, which ends once it is gone.
  const motion = await until(async () => {
    const list = await hub.api.get('api/events?camera=yard&kind=motion');
    return list.find((e) => e.end_us !== null);
  }, 40_000, `a finished motion event on yard (scene: ${await readFile(sceneLog, 'utf8').catch(() => '')})`);
  const p = await openPage(browser, hub.base);
  try {
    const { page } = p;
    await p.goto('#/camera/yard/timeline');
    const mark = page.locator(`[data-testid="timeline-event"][data-kind="motion"][data-event-id="${motion.id}"]`);
    await mark.waitFor();
    assert.match(await mark.getAttribute('class'), /is-span/, 'motion is a span');
    const box = await mark.boundingBox();
    assert.ok(box && box.width >= 3, `the span is drawn (${JSON.stringify(box)})`);
    // Zoomed to an hour, the span is as long as the event.
    await page.locator('[data-testid="zoom"] [data-value="1"]').click();
    const track = await page.locator('[data-testid="timeline-bar"]').boundingBox();
    const zoomed = await mark.boundingBox();
    const expected = ((motion.end_us - motion.start_us) / 1e3 / 3_600_000) * track.width;
    assert.ok(Math.abs(zoomed.width - Math.max(4, expected)) < 3, `span ${zoomed.width} px for ${expected} px of event`);

    // Clicking the mark plays from its pre-roll.
    await recordedAt('yard', motion.start_us / 1000 - PRE_ROLL_MS);
    await mark.click();
    const at = await playingAt(page);
    const target = motion.start_us / 1000 - PRE_ROLL_MS;
    assert.ok(at >= target - 1000 && at <= target + 4000, `playing ${Math.round(at - target)} ms from the pre-roll`);
    await screenshot(page, 'event-timeline-motion');

    // The list, filtered to motion: the event, its duration, its picture; nothing else.
    await p.goto('#/events?kind=motion');
    const row = page.locator(`[data-testid="event-row"][data-event-id="${motion.id}"]`);
    await row.waitFor();
    assert.deepEqual([...new Set(await page.locator('[data-testid="event-row"]').evaluateAll((rows) => rows.map((r) => r.dataset.kind)))], ['motion']);
    assert.match(await row.locator('[data-testid="event-duration"]').innerText(), /^\d+ s$/);
    await row.locator('[data-testid="event-thumbnail"][data-state="loaded"]').waitFor();
    // Other filters: the door's events only, then only presses.
    await page.locator('[data-testid="events-kind"]').selectOption('');
    await page.locator('[data-testid="events-camera"]').selectOption('door');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('[data-testid="event-row"]')];
      return rows.length > 0 && rows.every((r) => r.dataset.camera === 'door');
    });
    assert.match(page.url(), /camera=door/);
    await page.locator('[data-testid="events-camera"]').selectOption('');
    await page.locator('[data-testid="events-kind"]').selectOption('doorbell');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('[data-testid="event-row"]')];
      return rows.length > 0 && rows.every((r) => r.dataset.kind === 'doorbell');
    });

    // Locked, the thumbnails (encrypted like clips) are placeholders; unlocked, pictures again.
    await hub.api.post('api/lock');
    try {
      await page.reload();
      await page.locator('[data-testid="event-row"]').first().waitFor();
      await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="event-row"] [data-testid="event-thumbnail"]')]
        .every((t) => t.dataset.state === 'locked'));
      assert.equal(await page.locator('[data-testid="event-row"] img').count(), 0);
      await screenshot(page, 'events-locked');
    } finally {
      await hub.api.post('api/unlock', { passphrase: PASSPHRASE });
    }
    await page.reload();
    await page.locator('[data-testid="event-row"] [data-testid="event-thumbnail"][data-state="loaded"]').first().waitFor();
    checkPage(p);
  } finally {
    await p.close();
  }
});

test('a viewer sees no event of a camera without a grant, and logging out closes the feed', { timeout: 60_000 }, async () => {
  const owner = await openPage(browser, hub.base);
  const viewer = await openPage(browser, hub.base, {}, { login: VIEWER });
  try {
    await owner.goto('#/');
    await viewer.goto('#/events');
    await Promise.all([feedOpen(owner.page), feedOpen(viewer.page)]);
    await viewer.page.locator('[data-testid="event-row"]').first().waitFor();
    const cameras = await viewer.page.locator('[data-testid="event-row"]').evaluateAll((rows) => rows.map((r) => r.dataset.camera));
    assert.deepEqual([...new Set(cameras)], ['door'], 'only the door\u2019s events are listed');
    assert.equal(await viewer.page.locator('[data-testid="events-camera"] option[value="yard"]').count(), 0);
    const api = await apiClient(hub.base, VIEWER.name, VIEWER.password);
    assert.ok((await api.get('api/events')).every((e) => e.camera === 'door'));
    assert.equal((await api.request('GET', 'api/events?camera=yard')).status, 403);

    // The yard rings first, then the door: the viewer hears only the door.
    const yardId = await ring('yard', YARD_TOKEN);
    await owner.page.locator(`[data-testid="event-toast"][data-event-id="${yardId}"]`).waitFor({ timeout: 2500 });
    const doorId = await ring('door', DOOR_TOKEN);
    await viewer.page.locator(`[data-testid="event-toast"][data-event-id="${doorId}"]`).waitFor({ timeout: 2500 });
    await owner.page.locator(`[data-testid="event-toast"][data-event-id="${doorId}"]`).waitFor({ timeout: 2500 });
    assert.equal(await viewer.page.locator('[data-testid="event-toast"][data-camera="yard"]').count(), 0, 'no toast of the yard');
    // The open list took the new press in, and still nothing of the yard.
    await viewer.page.locator(`[data-testid="event-row"][data-event-id="${doorId}"]`).waitFor();
    assert.equal(await viewer.page.locator(`[data-testid="event-row"][data-event-id="${yardId}"]`).count(), 0);
    assert.equal(await viewer.page.locator('[data-testid="event-row"][data-camera="yard"]').count(), 0);
    await screenshot(viewer.page, 'events-viewer');

    // Logging out ends the feed; no toast reaches the login screen.
    await viewer.goto('#/account');
    await viewer.page.locator('[data-testid="logout"]').click();
    await viewer.page.locator('[data-testid="login-screen"]').waitFor();
    await viewer.page.locator('html[data-events-feed="closed"]').waitFor({ state: 'attached' });
    await ring('door', DOOR_TOKEN);
    await sleep(1000);
    assert.equal(await viewer.page.locator('[data-testid="event-toast"]').count(), 0);
    checkPage(owner);
    checkPage(viewer);
  } finally {
    await owner.close();
    await viewer.close();
  }
});
