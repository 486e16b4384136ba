// hearth's web UI in a real browser: the dev build of hearth records GStreamer's RTSP server
// and serves the UI, Debian's Chromium (headless, via playwright-core) uses it as a person
// would. Each test leaves a full-page screenshot in tests/artifacts/ (git-ignored), and checks
// that the page loaded nothing from anywhere but the hub on 127.0.0.1.
//
// Run: `cargo build && node --test tests/browser/` (what `make test` does after cargo test).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ARTIFACTS, getJson, launchBrowser, localInput, openPage, removeDir, run, screenshot, startHub,
  startRtspServer, stopProcess, waitForClips,
} from './harness.mjs';

let camera = null; // {child, url}
let hub = null;    // {child, dir, base, ...}
let browser = null;

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  camera = await startRtspServer(join(ARTIFACTS, 'rtsp-server.log'));
  hub = await startHub(camera.url);
  browser = await launchBrowser();
  await waitForClips(hub, 2, 45_000);
}, { timeout: 90_000 });

after(async () => {
  await browser?.close().catch(() => {});
  await stopProcess(hub?.child);
  await stopProcess(camera?.child);
  if (hub) {
    // Keep the hub's log next to the screenshots, for whoever looks at a failure.
    await copyFile(join(hub.dir, 'serve.log'), join(ARTIFACTS, 'hearth-serve.log')).catch(() => {});
    await removeDir(hub.dir);
  }
}, { timeout: 30_000 });

/** Every URL the page used was on 127.0.0.1, and no script error went uncaught. */
function checkPage(p, t) {
  for (const e of p.consoleErrors) t.diagnostic(`console error: ${e}`);
  assert.ok(p.urls.length > 0, 'the page made no requests at all?');
  assert.deepEqual(p.externalUrls(), [], 'the UI must load nothing from outside the hub');
  assert.deepEqual(p.pageErrors, [], 'uncaught errors in the page');
  // A load from elsewhere that the Content-Security-Policy blocked never becomes a request.
  assert.deepEqual(p.consoleErrors.filter((e) => /Content Security Policy/i.test(e)), [], 'CSP violations');
}

/** Visits `#/` and waits for door's card to be online (and, softly, its live video to play). */
async function openGrid(p, t) {
  const started = Date.now();
  await p.goto('#/');
  const card = p.page.locator('[data-testid="camera-card"][data-camera="door"]');
  await card.waitFor();
  await p.page.locator('[data-testid="camera-card"][data-camera="door"][data-status="online"]').waitFor();
  const online = Date.now();
  assert.equal(await card.locator('[data-testid="camera-status"]').getAttribute('data-status'), 'online');
  assert.match(await card.locator('[data-testid="camera-status"]').innerText(), /online/i);
  // The card shows live video for an online camera; give it a moment so the screenshot has a
  // picture, but the live test is where playing is asserted.
  try {
    await card.locator('[data-testid="live-video"][data-state="playing"]').waitFor({ timeout: 15_000 });
    t.diagnostic(`grid: card online after ${online - started} ms, live playing after ${Date.now() - started} ms`);
    await sleep(500);
  } catch {
    t.diagnostic(`grid live video not playing: ${await card.locator('video').getAttribute('data-state').catch(() => '?')}`);
  }
  return card;
}

/** Statistics of the video's current frame, drawn into a canvas in the page (BT.601 luma). */
function frameStats(video) {
  const w = video.videoWidth;
  const h = video.videoHeight;
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, w, h);
  const { data } = ctx.getImageData(0, 0, w, h);
  let sum = 0;
  let max = 0;
  let bright = 0;
  for (let i = 0; i < data.length; i += 4) {
    const y = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
    sum += y;
    if (y > max) max = y;
    if (y > 100) bright++;
  }
  const n = data.length / 4;
  return { width: w, height: h, meanLuma: sum / n, maxLuma: max, brightFraction: bright / n };
}

test('grid: the door camera is listed online', { timeout: 60_000 }, async (t) => {
  const p = await openPage(browser, hub.base);
  try {
    await openGrid(p, t);
    assert.match(await p.page.locator('[data-testid="cameras-summary"]').innerText(), /1 camera.*1 online/);
    await screenshot(p.page, 'grid');
    checkPage(p, t);
  } finally {
    await p.close();
  }
});

test('live: video plays near the live edge and is not black', { timeout: 90_000 }, async (t) => {
  const p = await openPage(browser, hub.base);
  try {
    const { page } = p;
    await p.goto('#/camera/door');
    const video = page.locator('[data-testid="live-video"]');
    await page.locator('[data-testid="live-video"][data-state="playing"]').waitFor({ timeout: 30_000 });

    // currentTime advances, and the buffer ahead of the playhead (how far behind the newest
    // fragment we are: the part of the latency the browser adds) stays small.
    const sample = () => video.evaluate((v) => ({
      time: v.currentTime,
      lag: v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : null,
      paused: v.paused,
    }));
    const first = await sample();
    const lags = [];
    for (let i = 0; i < 8; i++) {
      await sleep(250);
      const s = await sample();
      if (s.lag !== null) lags.push(s.lag);
    }
    const last = await sample();
    assert.ok(last.time - first.time > 1, `live currentTime advanced only ${last.time - first.time}s in 2 s`);
    assert.equal(last.paused, false);
    lags.sort((a, b) => a - b);
    const medianLag = lags[Math.floor(lags.length / 2)];
    t.diagnostic(`live buffer lag over 2 s: min ${lags[0].toFixed(2)} s, median ${medianLag.toFixed(2)} s, max ${lags[lags.length - 1].toFixed(2)} s`);
    assert.ok(medianLag < 2, `live playback is ${medianLag.toFixed(2)} s behind the newest buffered video`);

    // A real picture: the test pattern is a white ball and a clock on black, so look for bright
    // pixels rather than at the mean.
    const stats = await video.evaluate(frameStats);
    t.diagnostic(`live frame: ${JSON.stringify(stats)}`);
    assert.ok(stats.width > 0 && stats.height > 0, 'the video has no size');
    assert.ok(stats.maxLuma > 100, `live frame looks black (max luma ${stats.maxLuma})`);
    assert.ok(stats.brightFraction > 0.001, `almost no bright pixels (${stats.brightFraction})`);
    assert.equal(await page.locator('[data-testid="camera-status"]').first().getAttribute('data-status'), 'online');
    await screenshot(page, 'live');
    checkPage(p, t);
    assert.ok(p.urls.some((u) => u.startsWith('ws://') && u.includes('/api/cameras/door/live')), 'no live WebSocket');
  } finally {
    await p.close();
  }

  // The grid at a desktop and a phone size.
  for (const [name, options] of [
    ['grid-desktop', { viewport: { width: 1280, height: 800 } }],
    ['grid-phone', { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true }],
  ]) {
    const q = await openPage(browser, hub.base, options);
    try {
      await openGrid(q, t);
      await screenshot(q.page, name);
      checkPage(q, t);
    } finally {
      await q.close();
    }
  }
});

test('timeline: a recorded span plays a stored clip', { timeout: 60_000 }, async (t) => {
  const p = await openPage(browser, hub.base);
  try {
    const { page } = p;
    await p.goto('#/camera/door/timeline');
    await page.locator('[data-testid="timeline-span"]').first().waitFor();
    assert.ok(await page.locator('[data-testid="timeline-span"]').count() >= 1);
    // A day is 24 h across the bar; the few recorded seconds are a sliver. Zoom to an hour
    // (as a person would) so the span is wide enough to aim at.
    await page.locator('[data-testid="zoom"] [data-value="1"]').click();
    const span = page.locator('[data-testid="timeline-span"]').first();
    const box = await span.boundingBox();
    assert.ok(box && box.width >= 2, `first span too narrow to click: ${JSON.stringify(box)}`);
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);

    const video = page.locator('[data-testid="playback-video"]');
    await page.waitForFunction(() => {
      const v = document.querySelector('[data-testid="playback-video"]');
      return v && (v.currentSrc || v.src).includes('/api/clips/') && v.readyState >= 2 && !v.paused;
    }, null, { timeout: 20_000 });
    const src = await video.evaluate((v) => v.currentSrc || v.src);
    assert.match(src, /\/api\/clips\/\d+\.mp4/);
    // Where playback is in wall-clock time: the clip's start plus currentTime (the next clip
    // follows when one ends, so currentTime alone may go back to 0).
    const clipStart = new Map((await getJson(hub, 'api/clips')).map((c) => [String(c.id), c.start_us / 1000]));
    const position = async () => {
      const id = await page.locator('[data-testid="player"]').getAttribute('data-clip');
      assert.ok(clipStart.has(id), `playing clip ${id}, which /api/clips does not list`);
      return clipStart.get(id) + 1000 * await video.evaluate((v) => v.currentTime);
    };
    const t0 = await position();
    await sleep(1500);
    const t1 = await position();
    assert.ok(t1 - t0 > 500, `playback did not advance (${t0} → ${t1})`);
    const stats = await video.evaluate(frameStats);
    t.diagnostic(`playback ${src} frame: ${JSON.stringify(stats)}`);
    assert.ok(stats.maxLuma > 100, 'the recorded frame looks black');
    assert.equal(await page.locator('[data-testid="timeline-playhead"]').isVisible(), true);
    await screenshot(page, 'timeline');
    checkPage(p, t);
  } finally {
    await p.close();
  }
});

test('export: the form downloads one H.264 MP4 across clips', { timeout: 60_000 }, async (t) => {
  const p = await openPage(browser, hub.base);
  try {
    const { page } = p;
    await p.goto('#/clips');
    await page.locator('[data-testid="export-camera"] option[value="door"]').waitFor({ state: 'attached' });
    await page.locator('[data-testid="export-camera"]').selectOption('door');
    // Whole minutes (the inputs' step): from well before the first clip to after now.
    await page.locator('[data-testid="export-from"]').fill(localInput(Date.now() - 10 * 60_000));
    await page.locator('[data-testid="export-to"]').fill(localInput(Date.now() + 2 * 60_000));
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: 30_000 }),
      page.locator('[data-testid="export-form"] button[type="submit"]').click(),
    ]);
    assert.match(download.url(), /\/api\/cameras\/door\/export\.mp4\?start=.+&end=.+/);
    const file = join(ARTIFACTS, 'export.mp4');
    await download.saveAs(file);
    assert.equal(await download.failure(), null);
    await page.locator('[data-testid="export-message"] .form-ok').waitFor();

    const { stdout } = await run('ffprobe', ['-v', 'error', '-count_frames', '-show_entries',
      'stream=codec_name,nb_read_frames', '-of', 'json', file]);
    const streams = JSON.parse(stdout).streams || [];
    t.diagnostic(`export ${download.suggestedFilename()}: ${JSON.stringify(streams)}`);
    const videoStream = streams.find((s) => s.codec_name === 'h264');
    assert.ok(videoStream, `no H.264 stream in the export: ${stdout}`);
    assert.ok(Number(videoStream.nb_read_frames) > 50, `only ${videoStream.nb_read_frames} frames exported`);
    await screenshot(page, 'export');
    checkPage(p, t);
  } finally {
    await p.close();
  }
});

test('storage and clips pages show door', { timeout: 60_000 }, async (t) => {
  const p = await openPage(browser, hub.base);
  try {
    const { page } = p;
    await p.goto('#/storage');
    const row = page.locator('[data-testid="storage-camera"][data-camera="door"]');
    await row.waitFor();
    const bar = row.locator('[data-testid="storage-camera-bar"]');
    assert.equal(await bar.isVisible(), true);
    const percent = Number(await bar.getAttribute('data-percent'));
    const storage = await getJson(hub, 'api/storage');
    t.diagnostic(`storage bar ${percent}%: ${JSON.stringify(storage)}`);
    assert.ok(percent > 0, 'door uses some of the budget');
    await screenshot(page, 'storage');

    await p.goto('#/clips');
    await page.locator('[data-testid="clip-row"]').nth(1).waitFor();
    const rows = await page.locator('[data-testid="clip-row"]').count();
    assert.ok(rows >= 2, `only ${rows} clip rows`);
    assert.match(await page.locator('[data-testid="clip-row"]').first().innerText(), /door/);
    await screenshot(page, 'clips');
    checkPage(p, t);
  } finally {
    await p.close();
  }
});
