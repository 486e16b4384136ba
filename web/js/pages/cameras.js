// #/ — every camera as a card: live video for up to MAX_LIVE online cameras, refreshed
// snapshots for the rest, offline state with the last error.

import { api, urls } from '../api.js';
import { h, every, codecName, fmtBitrate, fmtFps, fmtResolution, cameraHref, setChildren } from '../util.js';
import { icon } from '../icons.js';
import { createLiveView, mediaSourceClass } from '../live.js';
import { statusPill, errorNotice, emptyState, offlinePanel, recordingsOnlyPanel, pageHead } from '../ui.js';
import { isAdmin, may } from '../session.js';

const MAX_LIVE = 4;
const REFRESH_MS = 5000;
const SNAPSHOT_MS = 10_000;

export function mount(root) {
  const summary = h('span', { 'data-testid': 'cameras-summary' });
  root.append(pageHead({ title: 'Cameras', subtitle: summary }));
  const grid = h('div', { class: 'cam-grid', 'data-testid': 'camera-grid', 'aria-busy': 'true' });
  const notice = h('div', { class: 'notice-slot' });
  root.append(notice, grid);

  // Skeleton while the first answer is on its way.
  for (let i = 0; i < 3; i++) {
    grid.append(h('div', { class: 'cam-card skeleton', 'aria-hidden': 'true' },
      h('div', { class: 'cam-media' }), h('div', { class: 'cam-info' }, h('span', { class: 'sk-line' }), h('span', { class: 'sk-line short' }))));
  }

  const cards = new Map(); // name → card controller
  let first = true;

  async function refresh() {
    let cams;
    try {
      cams = await api('cameras');
    } catch (e) {
      setChildren(notice, errorNotice(e, { title: 'Couldn\u2019t load cameras', onRetry: refresh }));
      if (first) { grid.replaceChildren(); grid.removeAttribute('aria-busy'); }
      return;
    }
    notice.replaceChildren();
    if (first) { grid.replaceChildren(); grid.removeAttribute('aria-busy'); first = false; }
    if (!Array.isArray(cams) || cams.length === 0) {
      for (const c of cards.values()) c.destroy();
      cards.clear();
      setChildren(grid, emptyState({
        iconName: 'camera', title: 'No cameras yet', testid: 'no-cameras',
        text: isAdmin()
          ? 'Add a [[camera]] section with its RTSP address to the hub\u2019s config.toml and restart hearth. Cameras show up here as soon as they are configured.'
          : 'No camera has been shared with you yet. Ask an admin of this hub to give you access.',
      }));
      summary.textContent = 'No cameras configured';
      return;
    }
    grid.querySelector('[data-testid="no-cameras"]')?.remove();

    const online = cams.filter((c) => c.status === 'online').length;
    summary.textContent = `${cams.length} camera${cams.length === 1 ? '' : 's'} \u00b7 ${online} online`;

    // Live slots go to the first MAX_LIVE online cameras this browser can decode, in
    // configured order; the others show snapshots.
    const liveNames = new Set(cams.filter((c) => c.status === 'online' && canPlay(c.codec) && may(c.name, 'live')).slice(0, MAX_LIVE).map((c) => c.name));
    const seen = new Set();
    cams.forEach((cam, i) => {
      seen.add(cam.name);
      let card = cards.get(cam.name);
      if (!card) {
        card = cameraCard(cam.name);
        cards.set(cam.name, card);
      }
      if (grid.children[i] !== card.el) grid.insertBefore(card.el, grid.children[i] || null);
      card.update(cam, liveNames.has(cam.name));
    });
    for (const [name, card] of cards) {
      if (!seen.has(name)) { card.destroy(); card.el.remove(); cards.delete(name); }
    }
  }

  const stop = every(REFRESH_MS, refresh);
  return () => {
    stop();
    for (const c of cards.values()) c.destroy();
  };
}

/** Whether this browser can decode the camera's codec live (unknown codec: try). */
function canPlay(codec) {
  const MS = mediaSourceClass();
  if (!MS) return false;
  if (!codec) return true;
  try { return MS.isTypeSupported(`video/mp4; codecs="${codec}"`); } catch { return true; }
}

function cameraCard(name) {
  const media = h('a', { class: 'cam-media', href: cameraHref(name), 'aria-label': `Open ${name}` });
  // Nothing is drawn over the picture's corners (cameras stamp their clock and name there):
  // the status sits next to the name, below the video.
  const statusSlot = h('span', { class: 'cam-status' });
  const title = h('h2', { class: 'cam-name' }, name);
  const specs = h('span', { class: 'cam-specs' });
  const bitrate = h('span', { class: 'cam-bitrate', 'data-testid': 'camera-bitrate' });
  const meta = h('p', { class: 'cam-meta', 'data-testid': 'camera-meta' }, specs, bitrate);
  const open = may(name, 'playback')
    ? h('a', { class: 'btn-icon', href: `${cameraHref(name)}/timeline`, 'aria-label': `Timeline of ${name}`, title: 'Timeline', html: icon('timeline') })
    : null;
  const el = h('article', { class: 'cam-card', 'data-testid': 'camera-card', 'data-camera': name },
    h('div', { class: 'cam-media-wrap' }, media),
    h('div', { class: 'cam-info' },
      h('div', { class: 'cam-info-main' },
        h('div', { class: 'cam-title-row' }, h('a', { href: cameraHref(name), class: 'cam-title-link' }, title), statusSlot),
        meta),
      h('div', { class: 'cam-info-end' }, open)));

  let mode = null;       // 'live' | 'snapshot' | 'offline'
  let live = null;
  let stopSnap = null;
  let lastStatus = null;

  function clear() {
    live?.destroy();
    live = null;
    stopSnap?.();
    stopSnap = null;
    media.replaceChildren();
  }

  function showSnapshot(note) {
    const img = h('img', { class: 'cam-snapshot', alt: `Latest picture from ${name}`, 'data-testid': 'camera-snapshot', decoding: 'async' });
    const placeholder = h('div', { class: 'media-placeholder subtle' }, h('span', { class: 'spinner' }));
    media.append(placeholder, img);
    if (note) media.append(h('span', { class: 'snap-note', 'data-testid': 'snapshot-note' }, note));
    img.hidden = true;
    stopSnap = every(SNAPSHOT_MS, () => new Promise((resolve) => {
      // Load off-screen, swap when ready: no flicker, and a 404 keeps the last picture.
      const next = new Image();
      next.onload = () => {
        img.src = next.src;
        img.hidden = false;
        placeholder.remove();
        resolve();
      };
      next.onerror = () => {
        if (img.hidden) setChildren(placeholder, h('span', { class: 'placeholder-icon', html: icon('image') }), h('span', null, 'No picture yet'));
        resolve();
      };
      next.src = urls.snapshot(name);
    }));
  }

  return {
    el,
    update(cam, wantLive) {
      el.dataset.status = cam.status;
      if (cam.status !== lastStatus) {
        setChildren(statusSlot, statusPill(cam.status, { inline: true }));
        lastStatus = cam.status;
      }
      // The same fields and formatting as the live page's Details card.
      const parts = [fmtResolution(cam.width, cam.height), codecName(cam.codec), fmtFps(cam.fps)].filter(Boolean);
      specs.textContent = parts.length ? parts.join(' \u00b7 ') : '\u00a0';
      bitrate.textContent = fmtBitrate(cam.bitrate_bps) || '';

      const playable = canPlay(cam.codec);
      const nextMode = !may(name, 'live') ? 'recordings-only'
        : cam.status !== 'online' ? 'offline' : wantLive ? 'live' : playable ? 'snapshot' : 'snapshot-only';
      if (nextMode === 'recordings-only') {
        // No live grant: no video and no snapshot, only the way to the recordings.
        if (mode !== nextMode) {
          clear();
          media.append(recordingsOnlyPanel());
        }
      } else if (nextMode === 'offline') {
        // Re-render each refresh: "last seen" ages.
        clear();
        media.append(offlinePanel(cam));
      } else if (nextMode !== mode) {
        clear();
        if (nextMode === 'live') {
          live = createLiveView(name);
          media.append(live.el);
          live.start();
        } else if (nextMode === 'snapshot-only') {
          showSnapshot(`${codecName(cam.codec) || 'This codec'} can\u2019t play live in this browser \u2014 showing snapshots`);
        } else {
          showSnapshot();
        }
      }
      mode = nextMode;
    },
    destroy() { clear(); },
  };
}
