// #/clips?camera=NAME&day=YYYY-MM-DD — recorded clips: filter, play inline, download, and
// export a time range across clips as one MP4.

import { api, urls, probeMedia } from '../api.js';
import {
  h, dayStr, isDayStr, addDays, dayBounds, iso, fmtDay, fmtTime, fmtHM, fmtBytes, fmtDuration, codecName, fmtResolution,
  replaceQuery, setChildren, localInputValue, loading, clockStr, timelineHref, HOUR,
} from '../util.js';
import { icon } from '../icons.js';
import { status, onStatus, markLocked, lockedPanel, openLockDialog } from '../lock.js';
import { errorNotice, emptyState, pageHead } from '../ui.js';
import { isAdmin, may } from '../session.js';

const PAGE = 100;

export function mount(root, { query }) {
  const today = dayStr();
  let camera = query.camera || '';
  let day = isDayStr(query.day) && query.day <= today ? query.day : today;
  let clips = [];
  let shown = PAGE;
  let playing = null;    // clip being played inline
  let pendingPlay = null;
  let cameras = [];
  const cleanups = [];

  // ---- filters: one compact toolbar row above the table
  const camSelect = h('select', { class: 'input input-compact', id: 'clips-camera', 'data-testid': 'clips-camera' }, h('option', { value: '' }, 'All cameras'));
  const dayInput = h('input', { type: 'date', class: 'input input-compact', id: 'clips-day', 'data-testid': 'clips-day', max: today, value: day });
  const prevDay = h('button', { type: 'button', class: 'btn-icon btn-compact', 'aria-label': 'Previous day', title: 'Previous day', html: icon('chevronLeft'), onclick: () => setDay(addDays(day, -1)) });
  const nextDay = h('button', { type: 'button', class: 'btn-icon btn-compact', 'aria-label': 'Next day', title: 'Next day', html: icon('chevronRight'), onclick: () => setDay(addDays(day, 1)) });
  const filters = h('form', { class: 'filter-bar', role: 'search', 'aria-label': 'Filter clips', onsubmit: (e) => e.preventDefault() },
    h('div', { class: 'filter-item' }, h('label', { class: 'filter-label', for: 'clips-camera' }, 'Camera'), camSelect),
    h('div', { class: 'filter-item' }, h('label', { class: 'filter-label', for: 'clips-day' }, 'Day'),
      h('div', { class: 'filter-day' }, prevDay, dayInput, nextDay)));
  camSelect.addEventListener('change', () => { camera = camSelect.value; syncQuery(); load(); });
  dayInput.addEventListener('change', () => { if (isDayStr(dayInput.value)) setDay(dayInput.value); });
  function setDay(d) {
    if (!isDayStr(d)) return;
    day = d > today ? today : d;
    dayInput.value = day;
    nextDay.disabled = day >= today;
    syncQuery();
    load();
  }
  nextDay.disabled = day >= today;

  const subtitle = h('span', { 'data-testid': 'clips-summary' });
  const lockSlot = h('div', { class: 'notice-slot' });
  const playerSlot = h('div', { class: 'clip-player-slot' });
  const listSlot = h('div', { class: 'clips-list-slot' });

  // ---- export
  const exportCard = exportForm();

  root.append(
    pageHead({ title: 'Clips', subtitle }),
    h('div', { class: 'clips-layout' },
      h('div', { class: 'clips-main' }, filters, lockSlot, playerSlot, listSlot),
      h('aside', { class: 'clips-side' }, exportCard.el)));

  function syncQuery() { replaceQuery({ camera, day: day === today ? '' : day }); }

  // ---- lock banner
  cleanups.push(onStatus((s) => {
    if (s.locked === true && playing && playerSlot.querySelector('video')) play(playing);
    if (s.locked === true) {
      setChildren(lockSlot, h('div', { class: 'notice warn', 'data-testid': 'clips-locked' },
        h('span', { class: 'notice-icon', html: icon('lock') }),
        h('div', { class: 'notice-body' }, h('strong', null, 'Recordings are locked'),
          h('p', null, isAdmin()
            ? 'You can browse clips, but playing and downloading them needs your passphrase.'
            : 'You can browse clips; playing and downloading them waits until an admin unlocks recordings.')),
        isAdmin() ? h('button', { type: 'button', class: 'btn btn-small btn-primary', onclick: openLockDialog }, h('span', { html: icon('unlock') }), 'Unlock') : null));
    } else {
      lockSlot.replaceChildren();
      if (s.locked === false && pendingPlay) { const c = pendingPlay; pendingPlay = null; play(c); }
    }
    root.classList.toggle('is-locked', s.locked === true);
  }));

  // ---- cameras for the selects
  (async () => {
    try {
      cameras = await api('cameras');
    } catch { cameras = []; }
    // Clips of the cameras this account may play back; exports of those it may download.
    const names = cameras.map((c) => c.name).filter((n) => may(n, 'playback'));
    if (camera && !names.includes(camera)) names.push(camera);
    camSelect.append(...names.map((n) => h('option', { value: n }, n)));
    camSelect.value = camera;
    const downloadable = cameras.map((c) => c.name).filter((n) => may(n, 'download'));
    exportCard.setCameras(downloadable, downloadable.includes(camera) ? camera : '');
    exportCard.el.hidden = !downloadable.length;
  })();

  // ---- list
  async function load() {
    const { start, end } = dayBounds(day);
    subtitle.textContent = `${camera || 'All cameras'} \u00b7 ${fmtDay(day)}`;
    setChildren(listSlot, loading('Loading clips\u2026'));
    try {
      const list = await api('clips', { params: { camera: camera || null, start: iso(start), end: iso(end) } });
      clips = (Array.isArray(list) ? list : []).slice().reverse(); // newest first
      shown = PAGE;
      renderList();
    } catch (e) {
      setChildren(listSlot, errorNotice(e, { title: 'Couldn\u2019t load clips', onRetry: load }));
    }
  }

  function renderList() {
    if (!clips.length) {
      setChildren(listSlot, emptyState({
        iconName: 'film', testid: 'clips-empty',
        title: `No clips ${day === today ? 'today' : `on ${fmtDay(day)}`}`,
        text: camera ? `${camera} recorded nothing on this day.` : 'No camera recorded anything on this day.',
      }));
      return;
    }
    const total = clips.reduce((s, c) => s + (c.bytes || 0), 0);
    const dur = clips.reduce((s, c) => s + (c.end_us - c.start_us) / 1e6, 0);
    subtitle.textContent = `${camera || 'All cameras'} \u00b7 ${fmtDay(day)} \u00b7 ${clips.length} clip${clips.length === 1 ? '' : 's'}, ${fmtDuration(dur)}, ${fmtBytes(total)}`;
    const rows = clips.slice(0, shown).map(row);
    const table = h('table', { class: 'clips-table', 'data-testid': 'clips-table' },
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, 'Start'), h('th', { scope: 'col' }, 'Camera'), h('th', { scope: 'col' }, 'Duration'),
        h('th', { scope: 'col' }, 'Size'), h('th', { scope: 'col' }, 'Video'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
      h('tbody', null, rows));
    const more = clips.length > shown
      ? h('button', { type: 'button', class: 'btn show-more', onclick: () => { shown += PAGE; renderList(); } }, `Show ${Math.min(PAGE, clips.length - shown)} more of ${clips.length - shown}`)
      : null;
    setChildren(listSlot, h('div', { class: 'card table-card' }, table), more);
  }

  function row(c) {
    const start = c.start_us / 1000;
    const dur = (c.end_us - c.start_us) / 1e6;
    const fname = `${c.camera}-${dayStr(new Date(start))}-${clockStr(start).replaceAll(':', '')}.mp4`;
    const dl = h('a', {
      class: 'btn-icon', href: urls.clip(c.id), download: fname, 'aria-label': `Download clip from ${fmtTime(start)}`,
      title: 'Download', 'data-testid': 'clip-download', html: icon('download'),
      onclick: (ev) => { if (status.locked === true) { ev.preventDefault(); openLockDialog(); } },
    });
    const playBtn = h('button', {
      type: 'button', class: 'btn-icon btn-play-row', 'aria-label': `Play clip from ${fmtTime(start)}`, title: 'Play',
      'data-testid': 'clip-play', html: icon('play'), onclick: () => play(c),
    });
    const video = [codecName(c.codec), fmtResolution(c.width, c.height)].filter(Boolean).join(' \u00b7 ');
    return h('tr', { class: `clip-row${playing && playing.id === c.id ? ' is-playing' : ''}`, 'data-testid': 'clip-row', 'data-clip-id': String(c.id) },
      h('td', { 'data-label': 'Start' }, h('span', { class: 'clip-time' }, fmtTime(start)),
        h('a', { class: 'clip-tl-link small', href: timelineHref(c.camera, dayStr(new Date(start)), clockStr(start)), title: 'Open in timeline' }, 'timeline')),
      h('td', { 'data-label': 'Camera' }, c.camera),
      h('td', { 'data-label': 'Duration' }, fmtDuration(dur)),
      h('td', { 'data-label': 'Size' }, fmtBytes(c.bytes)),
      h('td', { 'data-label': 'Video', class: 'muted' }, video || '\u2014', c.has_audio ? h('span', { class: 'audio-tag', title: 'Has audio', html: icon('volume') }) : null),
      h('td', { class: 'row-actions' }, playBtn, dl));
  }

  // ---- inline player
  function play(c) {
    playing = c;
    listSlot.querySelectorAll('.clip-row').forEach((r) => r.classList.toggle('is-playing', r.dataset.clipId === String(c.id)));
    const start = c.start_us / 1000;
    const title = h('div', { class: 'clip-player-title' },
      h('strong', null, c.camera), h('span', { class: 'muted' }, `${fmtDay(dayStr(new Date(start)))}, ${fmtTime(start)} \u00b7 ${fmtDuration((c.end_us - c.start_us) / 1e6)}`));
    const close = h('button', { type: 'button', class: 'btn-icon', 'aria-label': 'Close player', html: icon('close'), onclick: closePlayer });
    let body;
    if (status.locked === true) {
      pendingPlay = c;
      body = lockedPanel({ title: 'Unlock to play this clip' });
    } else {
      const video = h('video', { class: 'clip-video', controls: true, playsinline: true, autoplay: true, preload: 'auto', src: urls.clip(c.id), 'data-testid': 'clip-video' });
      video.addEventListener('error', async () => {
        const err = await probeMedia(urls.clip(c.id));
        if (playing !== c) return;
        if (err && (err.status === 423 || err.code === 'locked')) {
          markLocked();
          play(c);
        } else {
          video.replaceWith(h('div', { class: 'media-placeholder big' }, h('span', { class: 'placeholder-icon', html: icon('alert') }),
            h('strong', null, 'Couldn\u2019t play this clip'),
            h('span', null, err ? err.message : 'This browser cannot play it; download it instead.')));
        }
      });
      body = video;
    }
    setChildren(playerSlot, h('section', { class: 'card clip-player', 'data-testid': 'clip-player', 'aria-label': 'Clip player' },
      h('div', { class: 'card-head' }, title, close), body));
    playerSlot.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  }

  function closePlayer() {
    const v = playerSlot.querySelector('video');
    if (v) { v.pause(); v.removeAttribute('src'); v.load(); }
    playing = null;
    pendingPlay = null;
    playerSlot.replaceChildren();
    listSlot.querySelectorAll('.clip-row.is-playing').forEach((r) => r.classList.remove('is-playing'));
  }

  load();
  return () => { cleanups.forEach((c) => c()); closePlayer(); };
}

/** Lets the browser download the export; the hub names the file (Content-Disposition). */
function startExport(cam, a, b) {
  const link = h('a', { href: urls.export(cam, iso(a), iso(b)), download: '', hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
}

/** "Export a range": camera, from, to → one MP4 across clips, downloaded by the browser. */
function exportForm() {
  const camSel = h('select', { class: 'input', id: 'export-camera', required: true, 'data-testid': 'export-camera' });
  const now = Date.now();
  const from = h('input', { type: 'datetime-local', class: 'input', id: 'export-from', required: true, 'data-testid': 'export-from', value: localInputValue(now - HOUR), step: '60' });
  const to = h('input', { type: 'datetime-local', class: 'input', id: 'export-to', required: true, 'data-testid': 'export-to', value: localInputValue(now), step: '60' });
  const msg = h('div', { class: 'export-msg', role: 'status', 'aria-live': 'polite', 'data-testid': 'export-message' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, h('span', { html: icon('export') }), 'Export MP4');
  const form = h('form', { class: 'export-form', 'data-testid': 'export-form', novalidate: true },
    h('div', { class: 'field' }, h('label', { class: 'label', for: 'export-camera' }, 'Camera'), camSel),
    h('div', { class: 'field-row' },
      h('div', { class: 'field' }, h('label', { class: 'label', for: 'export-from' }, 'From'), from),
      h('div', { class: 'field' }, h('label', { class: 'label', for: 'export-to' }, 'To'), to)),
    submit, msg);

  const say = (kind, ...content) => setChildren(msg, h('p', { class: `form-${kind}` }, content));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.replaceChildren();
    const cam = camSel.value;
    const a = Date.parse(from.value);
    const b = Date.parse(to.value);
    if (!cam) return say('error', 'Choose a camera.');
    if (Number.isNaN(a) || Number.isNaN(b)) return say('error', 'Enter both the start and the end.');
    if (b <= a) return say('error', 'The end must be after the start.');
    if (status.locked === true) {
      say('error', 'Recordings are locked. ', h('button', { type: 'button', class: 'link-btn', onclick: openLockDialog }, 'Unlock'), ' to export.');
      return;
    }
    submit.disabled = true;
    try {
      // Check first, so an empty range or a lock is explained here rather than by a
      // download of an error page.
      // (Listing clips needs the playback grant; with download alone, the export just starts.)
      if (!may(cam, 'playback')) {
        startExport(cam, a, b);
        say('ok', `Export started for ${fmtHM(a)}\u2013${fmtHM(b)}. Your browser saves it as it arrives.`);
        return;
      }
      const list = await api('clips', { params: { camera: cam, start: iso(a), end: iso(b) } });
      if (!list?.length) {
        say('error', `Nothing was recorded by ${cam} between ${fmtHM(a)} and ${fmtHM(b)}${dayStr(new Date(a)) === dayStr(new Date(b)) ? '' : ' on those days'}.`);
        return;
      }
      // What the file will hold: each clip's overlap with the range, not the range itself.
      let recordedMs = 0;
      let approx = 0;
      for (const c of list) {
        const overlap = Math.max(0, Math.min(c.end_us / 1000, b) - Math.max(c.start_us / 1000, a));
        const len = (c.end_us - c.start_us) / 1000 || 1;
        recordedMs += overlap;
        approx += (c.bytes || 0) * (overlap / len);
      }
      startExport(cam, a, b);
      say('ok', `Export started: ${fmtDuration(recordedMs / 1000)} recorded in ${list.length} clip${list.length === 1 ? '' : 's'} between ${fmtHM(a)} and ${fmtHM(b)}, about ${fmtBytes(approx)}. Your browser saves it as it arrives.`);
    } catch (e) {
      if (e.status === 423) { markLocked(); say('error', 'Recordings are locked. Unlock to export.'); } else say('error', e.message);
    } finally {
      submit.disabled = false;
    }
  });

  return {
    el: h('section', { class: 'card export-card', 'aria-labelledby': 'export-title' },
      h('div', { class: 'card-head' }, h('h2', { id: 'export-title' }, 'Export a range')),
      h('p', { class: 'muted small' }, 'One continuous MP4 across clips, decrypted on the hub and downloaded to this device.'),
      form),
    setCameras(names, selected) {
      camSel.replaceChildren(...names.map((n) => h('option', { value: n }, n)));
      if (selected) camSel.value = selected;
      if (!names.length) camSel.append(h('option', { value: '' }, 'No cameras'));
    },
  };
}
