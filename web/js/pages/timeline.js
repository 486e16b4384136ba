// #/camera/NAME/timeline?day=YYYY-MM-DD[&t=HH:MM:SS | &t=UNIX_MS] — a day of recordings: pick a
// moment on the bar, the clip containing it plays from there, and the next clip follows when it
// ends. The camera's events are marks on the bar; clicking one plays it from a few seconds before.

import { api, urls, probeMedia } from '../api.js';
import {
  h, dayStr, isDayStr, addDays, dayBounds, parseDay, iso, fmtDay, fmtTime, fmtDuration, clockStr,
  replaceQuery, cameraHref, setChildren, every, HOUR,
} from '../util.js';
import { icon } from '../icons.js';
import { Timeline } from '../timeline.js';
import { status, onStatus, markLocked, lockedPanel } from '../lock.js';
import { errorNotice, pageHead, segmented, toggleFullscreen } from '../ui.js';
import { PRE_ROLL_MS, kindLabel, loadEvents, onNotice } from '../events.js';

const SPEEDS = [0.5, 1, 2, 4, 8];
const ZOOMS = [24, 6, 1];

/** The timeline of one camera between two instants (ms), converted to ms and sorted. */
export async function loadTimeline(name, start, end) {
  const r = await api(`cameras/${encodeURIComponent(name)}/timeline`, { params: { start: iso(start), end: iso(end) } });
  const clips = (r?.clips || []).map((c) => ({ id: c.id, start: c.start_us / 1000, end: c.end_us / 1000 }))
    .sort((a, b) => a.start - b.start);
  const gaps = (r?.gaps || []).map((g) => ({ start: g.start_us / 1000, end: g.end_us / 1000, reason: g.reason }));
  const recording = r?.recording ? { start: r.recording.start_us / 1000 } : null;
  return { clips, gaps, recording };
}

/**
 * One line about a day's recordings, shared by the live page's strip and the timeline:
 * "3 clips · 14 s recorded · 1 gap · recording now". Durations are clipped to [start, end).
 */
export function recordingSummary(data, start, end) {
  const n = data.clips.length;
  const recorded = data.clips.reduce((s, c) => s + Math.max(0, Math.min(c.end, end) - Math.max(c.start, start)), 0) / 1000;
  const parts = [];
  if (n) parts.push(`${n.toLocaleString()} clip${n === 1 ? '' : 's'}`, `${fmtDuration(recorded)} recorded`);
  if (n && data.gaps.length) parts.push(`${data.gaps.length} gap${data.gaps.length === 1 ? '' : 's'}`);
  if (data.recording) parts.push(n ? 'recording now' : 'Recording now');
  return parts.join(' \u00b7 ');
}

/** `t=`: a local time of `day` (HH:MM[:SS]) or an instant in epoch milliseconds. */
function parseClock(day, t) {
  if (/^\d{10,15}$/.test(t || '')) return Number(t);
  const m = /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(t || '');
  if (!m) return null;
  const d = parseDay(day);
  d.setHours(Number(m[1]), Number(m[2]), Number(m[3] || 0), 0);
  return d.getTime();
}

const store = {
  get(k, d) { try { return JSON.parse(localStorage.getItem(`hearth.${k}`)) ?? d; } catch { return d; } },
  set(k, v) { try { localStorage.setItem(`hearth.${k}`, JSON.stringify(v)); } catch { /* private mode */ } },
};

export function mount(root, { params, query }) {
  const name = params.name;
  const today = dayStr();
  const atMs = /^\d{10,15}$/.test(query.t || '') ? Number(query.t) : null;
  let day = isDayStr(query.day) && query.day <= today ? query.day
    : atMs !== null && dayStr(new Date(atMs)) <= today ? dayStr(new Date(atMs)) : today;
  let bounds = dayBounds(day);
  let data = { clips: [], gaps: [], recording: null };
  let loaded = false;
  let cur = null;            // {index, clip}
  let pendingOffset = null;  // seconds, applied on loadedmetadata
  let pendingSeek = null;    // ms, retried after unlock
  let overlayKind = null;
  let rate = SPEEDS.includes(store.get('rate', 1)) ? store.get('rate', 1) : 1;
  let zoomHours = ZOOMS.includes(store.get('zoom', 24)) ? store.get('zoom', 24) : 24;
  let raf = 0;
  let loadSeq = 0;
  const cleanups = [];

  // ---- header and day navigation
  const subtitle = h('span', { 'data-testid': 'timeline-day-label' });
  const head = pageHead({ title: name, subtitle, back: { href: cameraHref(name), label: 'Live view' } });
  const prevBtn = h('button', { type: 'button', class: 'btn-icon', 'aria-label': 'Previous day', title: 'Previous day', 'data-testid': 'day-prev', html: icon('chevronLeft'), onclick: () => setDay(addDays(day, -1)) });
  const nextBtn = h('button', { type: 'button', class: 'btn-icon', 'aria-label': 'Next day', title: 'Next day', 'data-testid': 'day-next', html: icon('chevronRight'), onclick: () => setDay(addDays(day, 1)) });
  const dateInput = h('input', { type: 'date', class: 'input date-input', 'aria-label': 'Day', 'data-testid': 'day-picker', max: today, value: day });
  dateInput.addEventListener('change', () => { if (isDayStr(dateInput.value)) setDay(dateInput.value > today ? today : dateInput.value); });
  const todayBtn = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'day-today', onclick: () => setDay(today) }, 'Today');
  const dayNav = h('div', { class: 'day-nav', role: 'group', 'aria-label': 'Choose day' }, prevBtn, dateInput, nextBtn, todayBtn);
  head.append(h('div', { class: 'page-actions' }, dayNav));

  // ---- player
  const video = h('video', { class: 'playback-video', 'data-testid': 'playback-video', playsinline: true, preload: 'auto', 'aria-label': `Recording from ${name}` });
  video.muted = store.get('muted', false);
  const overlay = h('div', { class: 'player-overlay', 'data-testid': 'player-overlay' });
  const buffering = h('div', { class: 'player-buffering', hidden: true, 'aria-hidden': 'true' }, h('span', { class: 'spinner' }));
  const toast = h('div', { class: 'player-toast', role: 'status', hidden: true, 'data-testid': 'player-toast' });
  const player = h('div', { class: 'player', 'data-testid': 'player' }, video, buffering, overlay, toast);

  const playBtn = h('button', { type: 'button', class: 'btn-icon btn-play', 'aria-label': 'Play', 'data-testid': 'play-pause', html: icon('play'), onclick: togglePlay });
  const backBtn = h('button', { type: 'button', class: 'btn-icon', 'aria-label': 'Back 10 seconds', title: 'Back 10 s (J)', html: icon('back10'), onclick: () => skip(-10) });
  const fwdBtn = h('button', { type: 'button', class: 'btn-icon', 'aria-label': 'Forward 10 seconds', title: 'Forward 10 s (L)', html: icon('fwd10'), onclick: () => skip(10) });
  const clock = h('span', { class: 'player-clock', 'data-testid': 'playback-time', 'aria-live': 'off' }, '--:--:--');
  const muteBtn = h('button', { type: 'button', class: 'btn-icon', 'data-testid': 'mute', onclick: () => { video.muted = !video.muted; store.set('muted', video.muted); renderMute(); } });
  const speed = segmented({
    label: 'Playback speed', testid: 'speed', value: rate,
    options: SPEEDS.map((s) => ({ value: s, label: `${s}\u00d7` })),
    onChange: (v) => { rate = v; store.set('rate', v); video.defaultPlaybackRate = v; video.playbackRate = v; },
  });
  const download = h('a', { class: 'btn-icon', 'aria-label': 'Download this clip', title: 'Download this clip', 'data-testid': 'download-clip', html: icon('download'), 'aria-disabled': 'true' });
  const fsBtn = h('button', { type: 'button', class: 'btn-icon', 'aria-label': 'Fullscreen', title: 'Fullscreen', html: icon('maximize'), onclick: () => toggleFullscreen(player, video) });
  const controls = h('div', { class: 'player-bar' },
    h('div', { class: 'player-bar-group' }, backBtn, playBtn, fwdBtn, clock),
    h('div', { class: 'player-bar-group end' }, speed, muteBtn, download, fsBtn));

  // ---- timeline card
  const summary = h('p', { class: 'muted small', 'data-testid': 'timeline-summary' });
  const zoomSeg = segmented({
    label: 'Zoom', testid: 'zoom', value: zoomHours,
    options: ZOOMS.map((z) => ({ value: z, label: `${z} h`, title: z === 24 ? 'Whole day' : `${z} hour${z > 1 ? 's' : ''} around the playhead` })),
    onChange: (z) => setZoom(z),
  });
  const tlHost = h('div', { class: 'tl-host' });
  const tlNotice = h('div', { class: 'notice-slot' });
  const legend = h('ul', { class: 'legend', 'aria-label': 'Legend' },
    h('li', null, h('span', { class: 'sw sw-rec' }), 'Recorded'),
    h('li', null, h('span', { class: 'sw sw-gap' }), 'Gap'),
    h('li', null, h('span', { class: 'sw sw-live' }), 'Recording now'),
    h('li', null, h('span', { class: 'sw sw-none' }), 'No recording'),
    h('li', null, h('span', { class: 'sw sw-motion' }), 'Motion'),
    h('li', null, h('span', { class: 'sw sw-doorbell' }), 'Doorbell'));
  const tlCard = h('section', { class: 'card timeline-card', 'aria-label': 'Timeline' },
    h('div', { class: 'card-head' }, summary, zoomSeg), tlNotice, tlHost, legend,
    h('p', { class: 'sr-only', id: 'tl-help' }, 'Click or drag on the bar to play from that moment, or click an event mark to play that event. Keyboard: left and right arrows move, Shift for bigger steps, Page Up and Page Down an hour, Home and End, plus and minus zoom, [ and ] the previous and next event.'));

  root.classList.add('page-timeline');
  root.append(head, h('div', { class: 'player-card' }, player, controls), tlCard);

  let timeline = null;
  function makeTimeline() {
    timeline?.destroy();
    timeline = new Timeline({
      start: bounds.start, end: bounds.end, label: `Recordings of ${name}, ${fmtDay(day)}`,
      onSeek: (t) => seek(t),
      onScrub: (t) => scrub(t),
      onEvent: (e) => seek(Math.max(bounds.start, e.start - PRE_ROLL_MS)),
      onZoomKey: (dir) => {
        const i = ZOOMS.indexOf(zoomHours) + dir;
        if (i >= 0 && i < ZOOMS.length) { zoomSeg.set(ZOOMS[i]); setZoom(ZOOMS[i]); }
      },
    });
    timeline.setNow(Date.now());
    if (zoomHours < 24) timeline.zoom(zoomHours * HOUR, Math.min(Date.now(), bounds.end - 1));
    timeline.track.setAttribute('aria-describedby', 'tl-help');
    tlHost.replaceChildren(timeline.el);
    timeline.setEvents(marks);
  }

  // ---- events: marks on the bar, for the day shown
  let marks = [];
  let eventSeq = 0;
  async function refreshEvents() {
    const mine = ++eventSeq;
    const shown = bounds;
    let list;
    try {
      list = await loadEvents(name, shown.start, shown.end);
    } catch {
      return; // the bar still works without them
    }
    if (mine !== eventSeq || shown !== bounds) return;
    marks = list.map((e) => ({
      id: e.id, kind: e.kind, start: e.start_us / 1000, end: e.end_us === null ? null : e.end_us / 1000,
      label: `${kindLabel(e.kind)} at ${fmtTime(e.start_us / 1000)}${e.end_us === null ? ' (going on)' : e.end_us > e.start_us ? `, ${fmtDuration((e.end_us - e.start_us) / 1e6)}` : ''}`,
    }));
    timeline?.setEvents(marks);
  }
  let eventTimer = null;
  cleanups.push(onNotice((n) => {
    if (n.camera !== name) return;
    const t = n.time_us / 1000;
    if (t < bounds.start || (t >= bounds.end && n.phase !== 'end')) return;
    clearTimeout(eventTimer);
    eventTimer = setTimeout(refreshEvents, 300);
  }));
  cleanups.push(() => clearTimeout(eventTimer));

  function setZoom(z) {
    zoomHours = z;
    store.set('zoom', z);
    const center = timeline.playhead ?? Math.min(Date.now(), bounds.end - 1);
    timeline.zoom(z * HOUR, center);
  }

  // ---- overlay states
  function setOverlay(kind, ...content) {
    overlayKind = kind;
    overlay.dataset.kind = kind || '';
    overlay.hidden = !kind;
    player.dataset.overlay = kind || '';
    setChildren(overlay, h('div', { class: 'overlay-card' }, content));
  }

  function message(iconName, title, text, actions = []) {
    return [
      iconName ? h('div', { class: 'overlay-icon', html: icon(iconName) }) : null,
      h('h3', null, title),
      text ? h('p', { class: 'muted' }, text) : null,
      actions.length ? h('div', { class: 'overlay-actions' }, actions) : null,
    ];
  }

  function showPrompt() {
    if (status.locked === true) { showLocked(); return; }
    if (!loaded) { setOverlay('loading', h('span', { class: 'spinner' })); return; }
    if (!data.clips.length) {
      const live = data.recording
        ? [h('a', { class: 'btn btn-primary', href: cameraHref(name) }, h('span', { html: icon('live') }), 'Watch live')]
        : [];
      setOverlay('empty', ...message('film', data.recording ? 'Recording now' : 'Nothing recorded on this day',
        data.recording ? 'The first clip of today is still being written; it can be played in a minute or so.'
          : day === today ? 'Recordings appear here as soon as the camera has been recorded.' : 'Pick another day, or check the camera was online.',
        [...live, day < today ? h('button', { type: 'button', class: 'btn', onclick: () => setDay(addDays(day, 1)) }, 'Next day') : null].filter(Boolean)));
      return;
    }
    const first = data.clips[0];
    const last = data.clips[data.clips.length - 1];
    setOverlay('prompt', ...message('timeline', 'Pick a moment on the timeline', null, [
      h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'play-latest', onclick: () => seek(Math.max(last.start, last.end - 60_000)) },
        h('span', { html: icon('play') }), day === today ? 'Play the last minute' : 'Play the end of the day'),
      h('button', { type: 'button', class: 'btn', 'data-testid': 'play-first', onclick: () => seek(first.start) }, `From ${fmtTime(first.start)}`),
    ]));
  }

  function showLocked() {
    setOverlay('locked', lockedPanel({ onUnlocked: () => afterUnlock() }));
  }

  function afterUnlock() {
    if (overlayKind !== 'locked') return; // already handled (status event and form callback)
    const t = pendingSeek ?? (cur ? cur.clip.start + video.currentTime * 1000 : null);
    pendingSeek = null;
    if (t !== null) seek(t);
    else showPrompt();
  }

  // ---- playback
  function clipIndexAt(t) {
    const c = data.clips;
    let lo = 0;
    let hi = c.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (c[mid].end <= t) lo = mid + 1;
      else if (c[mid].start > t) hi = mid - 1;
      else return mid;
    }
    return -1;
  }
  const nextIndexAfter = (t) => data.clips.findIndex((c) => c.start >= t);

  function flash(text) {
    toast.textContent = text;
    toast.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { toast.hidden = true; }, 3500);
  }

  function seek(t) {
    timeline.setPlayhead(t);
    clock.textContent = fmtTime(t);
    if (status.locked === true) {
      pendingSeek = t;
      stopVideo();
      showLocked();
      return;
    }
    let i = clipIndexAt(t);
    let offset = 0;
    if (i >= 0) {
      offset = (t - data.clips[i].start) / 1000;
    } else if (data.recording && t >= data.recording.start) {
      stopVideo();
      setOverlay('recording', ...message('live', 'Still being recorded',
        'This moment is in the clip being written right now. It can be played once the clip closes \u2014 or watch live.',
        [h('a', { class: 'btn btn-primary', href: cameraHref(name) }, h('span', { html: icon('live') }), 'Watch live')]));
      return;
    } else {
      i = nextIndexAfter(t);
      if (i < 0) {
        stopVideo();
        setOverlay('nothing', ...message('film', `Nothing recorded after ${fmtTime(t)}`,
          day < today ? 'That was the last recording of this day.' : 'The camera has not recorded since then.',
          day < today ? [h('button', { type: 'button', class: 'btn', onclick: () => setDay(addDays(day, 1), { playFirst: true }) }, `Continue with ${fmtDay(addDays(day, 1))}`)] : []));
        return;
      }
      flash(`No recording at ${fmtTime(t)} \u2014 playing from ${fmtTime(data.clips[i].start)}`);
    }
    playClip(i, offset);
  }

  function playClip(i, offset) {
    const clip = data.clips[i];
    const url = urls.clip(clip.id);
    setOverlay(null);
    const same = cur && cur.clip.id === clip.id && video.currentSrc === url && video.readyState >= 1;
    cur = { index: i, clip };
    download.href = url;
    download.setAttribute('download', `${name}-${dayStr(new Date(clip.start))}-${clockStr(clip.start).replaceAll(':', '')}.mp4`);
    download.removeAttribute('aria-disabled');
    player.dataset.clip = String(clip.id);
    if (same) {
      video.currentTime = offset;
      play();
      return;
    }
    buffering.hidden = false;
    pendingOffset = offset > 0.05 ? offset : null;
    video.src = url;
    video.defaultPlaybackRate = rate;
    video.playbackRate = rate;
    play();
  }

  function play() {
    const p = video.play();
    p?.catch((e) => {
      if (e.name === 'NotAllowedError' && !video.muted) {
        // Autoplay with sound blocked (no tap yet): play muted, the mute button shows it.
        video.muted = true;
        renderMute();
        video.play().catch(() => renderPlay());
      }
    });
  }

  function stopVideo() {
    video.pause();
    cur = null;
    pendingOffset = null;
    buffering.hidden = true;
    video.removeAttribute('src');
    video.load();
    download.removeAttribute('href');
    download.setAttribute('aria-disabled', 'true');
    renderPlay();
  }

  function togglePlay() {
    if (!cur) {
      if (overlayKind === 'prompt') overlay.querySelector('[data-testid="play-latest"]')?.click();
      return;
    }
    if (video.paused) play(); else video.pause();
  }

  function skip(sec) {
    const t = position();
    if (t !== null) seek(t + sec * 1000);
  }

  function position() {
    if (!cur) return timeline?.playhead ?? null;
    return cur.clip.start + video.currentTime * 1000;
  }

  function scrub(t) {
    // While dragging inside the loaded clip, seek the video directly: instant feedback.
    clock.textContent = fmtTime(t);
    if (cur && t >= cur.clip.start && t < cur.clip.end && video.readyState >= 1 && !video.seeking) {
      video.currentTime = (t - cur.clip.start) / 1000;
    }
  }

  function tick() {
    raf = 0;
    if (!cur) return;
    const t = position();
    if (!timeline.dragging && timeline.keyCursor === null) {
      timeline.setPlayhead(t);
      clock.textContent = fmtTime(t);
    }
    if (!video.paused) raf = requestAnimationFrame(tick);
  }

  async function onEnded() {
    if (!cur) return;
    const endedAt = cur.clip.end;
    let n = cur.index + 1;
    if (n >= data.clips.length && day === today) {
      await refreshData();
      n = nextIndexAfter(endedAt - 1000);
      if (n >= 0 && data.clips[n].id === cur?.clip.id) n++;
    }
    if (n >= 0 && n < data.clips.length) {
      playClip(n, 0);
      return;
    }
    renderPlay();
    if (day === today) {
      setOverlay('caught-up', ...message('live', 'You\u2019re caught up', 'The rest is still being recorded.',
        [h('a', { class: 'btn btn-primary', href: cameraHref(name) }, h('span', { html: icon('live') }), 'Watch live')]));
    } else {
      setOverlay('end', ...message('film', 'End of this day\u2019s recordings', null,
        [h('button', { type: 'button', class: 'btn btn-primary', onclick: () => setDay(addDays(day, 1), { playFirst: true }) }, `Continue with ${fmtDay(addDays(day, 1))}`)]));
    }
  }

  async function onError() {
    if (!cur || !video.getAttribute('src')) return;
    const failed = cur;
    buffering.hidden = true;
    const err = await probeMedia(urls.clip(failed.clip.id));
    if (cur !== failed) return;
    if (err && (err.status === 423 || err.code === 'locked')) {
      pendingSeek = failed.clip.start + (video.currentTime || pendingOffset || 0) * 1000;
      stopVideo();
      markLocked();
      showLocked();
    } else if (err && err.status === 404) {
      stopVideo();
      setOverlay('error', ...message('alert', 'This clip is no longer on the hub',
        'It was probably deleted to make room for newer recordings.',
        [h('button', { type: 'button', class: 'btn', onclick: () => { refreshData(); showPrompt(); } }, 'Reload timeline')]));
    } else {
      const msg = err ? err.message : 'This browser could not play the clip (unsupported codec or a damaged file). You can still download it.';
      const dl = download.cloneNode(true);
      stopVideo();
      setOverlay('error', ...message('alert', 'Couldn\u2019t play this clip', msg,
        [h('a', { class: 'btn', href: dl.href, download: dl.getAttribute('download') || true }, h('span', { html: icon('download') }), 'Download'),
          failed.index + 1 < data.clips.length ? h('button', { type: 'button', class: 'btn btn-primary', onclick: () => playClip(failed.index + 1, 0) }, 'Next clip') : null].filter(Boolean)));
    }
  }

  function renderPlay() {
    const playing = !!cur && !video.paused;
    playBtn.innerHTML = icon(playing ? 'pause' : 'play');
    playBtn.setAttribute('aria-label', playing ? 'Pause' : 'Play');
    player.dataset.playing = String(playing);
  }

  function renderMute() {
    muteBtn.innerHTML = icon(video.muted ? 'volumeOff' : 'volume');
    muteBtn.setAttribute('aria-label', video.muted ? 'Unmute' : 'Mute');
    muteBtn.title = video.muted ? 'Unmute' : 'Mute';
  }

  video.addEventListener('loadedmetadata', () => {
    if (pendingOffset !== null) {
      const dur = Number.isFinite(video.duration) ? video.duration : Infinity;
      video.currentTime = Math.min(pendingOffset, Math.max(0, dur - 0.1));
      pendingOffset = null;
    }
    video.playbackRate = rate;
  });
  video.addEventListener('playing', () => { buffering.hidden = true; renderPlay(); if (!raf) raf = requestAnimationFrame(tick); });
  video.addEventListener('pause', () => { renderPlay(); tick(); });
  video.addEventListener('waiting', () => { if (cur) buffering.hidden = false; });
  video.addEventListener('canplay', () => { buffering.hidden = true; });
  video.addEventListener('seeked', () => { buffering.hidden = true; tick(); });
  video.addEventListener('timeupdate', () => { if (!raf) tick(); });
  video.addEventListener('ended', onEnded);
  video.addEventListener('error', onError);
  video.addEventListener('click', togglePlay);

  // ---- data
  async function refreshData() {
    const seq = ++loadSeq;
    try {
      const d = await loadTimeline(name, bounds.start, bounds.end);
      if (seq !== loadSeq) return;
      data = d;
      loaded = true;
      tlNotice.replaceChildren();
      timeline.setNow(Date.now());
      timeline.setData(data);
      timeline.setEmptyText(!data.clips.length && !data.recording ? 'Nothing recorded on this day' : null);
      if (cur) {
        const i = data.clips.findIndex((c) => c.id === cur.clip.id);
        if (i >= 0) cur.index = i;
      }
      summary.textContent = recordingSummary(data, bounds.start, bounds.end) || 'No recordings';
    } catch (e) {
      if (seq !== loadSeq) return;
      setChildren(tlNotice, errorNotice(e, { title: 'Couldn\u2019t load the timeline', onRetry: refreshData }));
      if (!loaded) {
        timeline.setEmptyText('Timeline unavailable');
        setOverlay('error', ...message('alert', 'Timeline unavailable', e.message));
      }
      throw e;
    }
  }

  async function setDay(d, { playFirst = false, at = null } = {}) {
    if (d > today) return;
    day = d;
    bounds = dayBounds(day);
    loaded = false;
    data = { clips: [], gaps: [], recording: null };
    marks = [];
    replaceQuery({ day });
    dateInput.value = day;
    subtitle.textContent = fmtDay(day);
    nextBtn.disabled = day >= today;
    todayBtn.disabled = day === today;
    stopVideo();
    makeTimeline();
    timeline.setEmptyText('Loading\u2026');
    summary.textContent = '\u00a0';
    showPrompt();
    refreshEvents();
    try { await refreshData(); } catch { return; }
    if (at !== null) seek(at);
    else if (playFirst && data.clips.length) seek(data.clips[0].start);
    else showPrompt();
  }

  // ---- lock changes, refresh, keyboard
  cleanups.push(onStatus((s) => {
    if (s.locked === false && overlayKind === 'locked') afterUnlock();
    else if (s.locked === true && cur) {
      // Locked while watching: the key is gone, so is the picture. Resume after unlock.
      pendingSeek = position();
      stopVideo();
      showLocked();
    } else if (s.locked === true && (overlayKind === 'prompt' || overlayKind === 'loading')) showLocked();
    download.classList.toggle('is-locked', s.locked === true);
  }));

  cleanups.push(every(30_000, async () => {
    if (day !== today || !loaded) return;
    refreshEvents();
    try { await refreshData(); } catch { /* shown */ }
  }, { now: false }));
  const nowTimer = setInterval(() => timeline?.setNow(Date.now()), 15_000);
  cleanups.push(() => clearInterval(nowTimer));

  function onKey(ev) {
    const tag = ev.target.tagName;
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (['INPUT', 'TEXTAREA', 'SELECT'].includes(tag) || (tag === 'BUTTON' && ev.key === ' ')) return;
    if (ev.target.closest?.('.tl-track')) return;
    if (ev.key === ' ' || ev.key === 'k') { ev.preventDefault(); togglePlay(); }
    else if (ev.key === 'j') skip(-10);
    else if (ev.key === 'l') skip(10);
  }
  document.addEventListener('keydown', onKey);
  cleanups.push(() => document.removeEventListener('keydown', onKey));

  renderPlay();
  renderMute();
  setDay(day, { at: atMs ?? parseClock(day, query.t) });

  return () => {
    cleanups.forEach((c) => c());
    cancelAnimationFrame(raf);
    clearTimeout(flash.timer);
    video.pause();
    video.removeAttribute('src');
    video.load();
    timeline?.destroy();
  };
}
