// #/camera/NAME — one camera live, its details, and today's recordings as a strip.

import { api, urls } from '../api.js';
import {
  h, every, codecName, fmtBitrate, fmtFps, fmtAgo, parseTime, dayStr, dayBounds, setChildren,
  timelineHref, clockStr,
} from '../util.js';
import { icon } from '../icons.js';
import { createLiveView } from '../live.js';
import { Timeline } from '../timeline.js';
import { statusPill, errorNotice, emptyState, offlinePanel, recordingsOnlyPanel, pageHead, toggleFullscreen } from '../ui.js';
import { loadTimeline, recordingSummary } from './timeline.js';
import { may } from '../session.js';

export function mount(root, { params }) {
  const name = params.name;
  const pillSlot = h('span', { class: 'title-pill' });
  const head = pageHead({ title: name, back: { href: '#/', label: 'Cameras' } });
  head.querySelector('h1').append(pillSlot);
  const notice = h('div', { class: 'notice-slot' });
  const stage = h('div', { class: 'stage', 'data-testid': 'camera-stage' });
  const today = dayStr();

  const snapshotLink = h('a', {
    class: 'btn', href: urls.snapshot(name), download: `${name}.jpg`, 'data-testid': 'snapshot-download',
    onclick: () => {
      const now = Date.now();
      snapshotLink.href = urls.snapshot(name, now);
      snapshotLink.download = `${name}-${dayStr(new Date(now))}-${clockStr(now).replaceAll(':', '')}.jpg`;
    },
  }, h('span', { html: icon('image') }), 'Snapshot');
  const fsButton = h('button', { type: 'button', class: 'btn', 'data-testid': 'fullscreen', onclick: () => toggleFullscreen(stage, stage.querySelector('video')) },
    h('span', { html: icon('maximize') }), 'Fullscreen');
  // What this account may do here decides which buttons there are (the hub checks again).
  const canLive = may(name, 'live');
  const canPlayback = may(name, 'playback');
  const actions = h('div', { class: 'toolbar' },
    canPlayback ? h('a', { class: 'btn btn-primary', href: timelineHref(name, today), 'data-testid': 'open-timeline' }, h('span', { html: icon('timeline') }), 'Timeline') : null,
    canLive ? snapshotLink : null, canLive ? fsButton : null);

  const details = h('dl', { class: 'details', 'data-testid': 'camera-details' });
  const stripHost = h('div', { class: 'strip-host' });
  const stripCard = h('section', { class: 'card strip-card', 'aria-labelledby': 'strip-title' },
    h('div', { class: 'card-head' },
      h('h2', { id: 'strip-title' }, 'Today'),
      h('a', { class: 'link-more', href: timelineHref(name, today) }, 'Open timeline', h('span', { html: icon('chevronRight') }))),
    stripHost);
  stripCard.hidden = !canPlayback;

  const layout = h('div', { class: 'camera-layout' },
    h('div', { class: 'camera-main' }, stage, actions, stripCard),
    h('aside', { class: 'camera-side card' }, h('h2', { class: 'side-title' }, 'Details'), details));

  root.append(head, notice, layout);
  stage.append(h('div', { class: 'media-placeholder big' }, h('span', { class: 'spinner' }), h('span', null, 'Loading\u2026')));

  let live = null;
  let mode = null;
  let found = true;

  function renderDetails(cam) {
    const seen = parseTime(cam.last_frame);
    const rows = [
      ['Status', statusPill(cam.status)],
      ['Resolution', cam.width && cam.height ? `${cam.width} \u00d7 ${cam.height}` : '\u2014'],
      ['Codec', cam.codec ? `${codecName(cam.codec)} (${cam.codec})` : '\u2014'],
      // The same fields and formatting as the card in the grid.
      ['Frame rate', fmtFps(cam.fps) || '\u2014'],
      ['Bitrate', fmtBitrate(cam.bitrate_bps) || '\u2014'],
      ['Last frame', seen ? fmtAgo(seen) : 'Never'],
    ];
    if (cam.last_error) rows.push(['Last error', h('span', { class: 'error-text', 'data-testid': 'camera-last-error' }, cam.last_error), 'block']);
    setChildren(details, rows.map(([k, v, block]) => h('div', { class: `detail${block ? ' detail-block' : ''}` }, h('dt', null, k), h('dd', null, v))));
  }

  async function refresh() {
    let cams;
    try {
      cams = await api('cameras');
    } catch (e) {
      setChildren(notice, errorNotice(e, { title: 'Couldn\u2019t load the camera', onRetry: refresh }));
      return;
    }
    notice.replaceChildren();
    const cam = cams.find((c) => c.name === name);
    if (!cam) {
      if (found) {
        found = false;
        live?.destroy();
        live = null;
        mode = null;
        layout.hidden = true;
        setChildren(notice, emptyState({
          iconName: 'videoOff', title: `No camera called \u201c${name}\u201d`, testid: 'camera-not-found',
          text: 'It may have been renamed or removed from the hub\u2019s configuration.',
          actions: [h('a', { class: 'btn', href: '#/' }, 'All cameras')],
        }));
      }
      return;
    }
    if (!found) { found = true; layout.hidden = false; }
    setChildren(pillSlot, statusPill(cam.status));
    renderDetails(cam);
    const nextMode = !canLive ? 'recordings-only' : cam.status === 'online' ? 'live' : 'offline';
    if (nextMode === 'recordings-only') {
      if (mode !== nextMode) {
        setChildren(stage, recordingsOnlyPanel({ big: true }));
      }
    } else if (nextMode === 'offline') {
      live?.destroy();
      live = null;
      setChildren(stage, offlinePanel(cam, { big: true }));
    } else if (mode !== 'live') {
      live = createLiveView(name, { big: true });
      setChildren(stage, live.el);
      live.start();
    }
    mode = nextMode;
  }

  // Today's strip: click anywhere to open the timeline there.
  const { start, end } = dayBounds(today);
  const strip = new Timeline({
    start, end, compact: true, label: `Recordings of ${name} today`,
    onSeek: (t) => { location.hash = timelineHref(name, today, clockStr(t)); },
  });
  stripHost.append(strip.el);
  const stripStatus = h('p', { class: 'strip-status muted small' });
  stripHost.append(stripStatus);

  async function refreshStrip() {
    if (!found || !canPlayback) return;
    try {
      const data = await loadTimeline(name, start, end);
      strip.setNow(Date.now());
      strip.setData(data);
      const empty = !data.clips.length && !data.recording;
      strip.setEmptyText(empty ? 'Nothing recorded yet today' : null);
      stripStatus.textContent = recordingSummary(data, start, end);
    } catch (e) {
      strip.setEmptyText(e.message);
    }
  }

  const stops = [every(5000, refresh), every(30_000, refreshStrip)];
  return () => {
    stops.forEach((s) => s());
    live?.destroy();
    strip.destroy();
  };
}
