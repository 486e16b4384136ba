// #/events?camera=NAME&kind=KIND&day=YYYY-MM-DD — what happened: motion, doorbell presses and
// other webhooks, newest first, with their thumbnails. Clicking one plays it on its camera's
// timeline from a few seconds before. New events appear as they happen (the live feed).

import { api } from '../api.js';
import {
  h, dayStr, isDayStr, dayBounds, iso, fmtDay, fmtTime, replaceQuery, setChildren, loading,
} from '../util.js';
import { icon } from '../icons.js';
import { onStatus } from '../lock.js';
import { errorNotice, emptyState, pageHead } from '../ui.js';
import {
  cssKind, eventHref, eventThumbnail, eventDuration, kindBadge, kindLabel, notificationControl, onNotice,
} from '../events.js';

const PAGE = 50;
const KINDS = ['motion', 'doorbell'];

export function mount(root, { query }) {
  const today = dayStr();
  let camera = query.camera || '';
  let kind = /^[a-z0-9_]{1,32}$/.test(query.kind || '') ? query.kind : '';
  let day = isDayStr(query.day) && query.day <= today ? query.day : '';
  let events = [];
  let more = false;
  let seq = 0;
  let alive = true;
  const rowCache = new Map(); // id → {key, el, thumb}
  const cleanups = [];

  // ---- filters
  const camSelect = h('select', { class: 'input input-compact', id: 'events-camera', 'data-testid': 'events-camera' }, h('option', { value: '' }, 'All cameras'));
  const kindSelect = h('select', { class: 'input input-compact', id: 'events-kind', 'data-testid': 'events-kind' },
    h('option', { value: '' }, 'All kinds'), KINDS.map((k) => h('option', { value: k }, kindLabel(k))));
  if (kind && !KINDS.includes(kind)) kindSelect.append(h('option', { value: kind }, kindLabel(kind)));
  kindSelect.value = kind;
  const dayInput = h('input', { type: 'date', class: 'input input-compact', id: 'events-day', 'data-testid': 'events-day', max: today, value: day });
  const clearDay = h('button', {
    type: 'button', class: 'btn-icon btn-compact', 'aria-label': 'Any day', title: 'Any day', 'data-testid': 'events-day-clear',
    html: icon('close'), hidden: !day, onclick: () => { dayInput.value = ''; setDay(''); },
  });
  const filters = h('form', { class: 'filter-bar', role: 'search', 'aria-label': 'Filter events', onsubmit: (e) => e.preventDefault() },
    h('div', { class: 'filter-item' }, h('label', { class: 'filter-label', for: 'events-camera' }, 'Camera'), camSelect),
    h('div', { class: 'filter-item' }, h('label', { class: 'filter-label', for: 'events-kind' }, 'Kind'), kindSelect),
    h('div', { class: 'filter-item' }, h('label', { class: 'filter-label', for: 'events-day' }, 'Day'),
      h('div', { class: 'filter-day' }, dayInput, clearDay)));
  camSelect.addEventListener('change', () => { camera = camSelect.value; sync(); load(); });
  kindSelect.addEventListener('change', () => { kind = kindSelect.value; sync(); load(); });
  dayInput.addEventListener('change', () => setDay(isDayStr(dayInput.value) ? dayInput.value : ''));
  function setDay(d) {
    day = d && d > today ? today : d;
    dayInput.value = day;
    clearDay.hidden = !day;
    sync();
    load();
  }
  function sync() { replaceQuery({ camera, kind, day }); }

  const subtitle = h('span', { 'data-testid': 'events-summary' });
  const notify = notificationControl({ compact: true });
  cleanups.push(() => notify.destroy());
  const listSlot = h('div', { class: 'events-list-slot' });
  const moreSlot = h('div', { class: 'events-more-slot' });
  root.append(pageHead({ title: 'Events', subtitle, actions: notify }), filters, listSlot, moreSlot);

  // ---- cameras for the select (only those this account may see)
  (async () => {
    let cameras = [];
    try { cameras = await api('cameras'); } catch { /* the list says what is wrong */ }
    if (!alive) return;
    const names = cameras.map((c) => c.name);
    if (camera && !names.includes(camera)) names.push(camera);
    camSelect.append(...names.map((n) => h('option', { value: n }, n)));
    camSelect.value = camera;
  })();

  function params(extra = {}) {
    const p = { camera: camera || null, kind: kind || null, limit: PAGE, ...extra };
    if (day) {
      const { start, end } = dayBounds(day);
      p.start = iso(start);
      p.end = iso(end);
    }
    return p;
  }

  function describeFilters() {
    return [camera || 'All cameras', kind ? kindLabel(kind) : null, day ? fmtDay(day) : null].filter(Boolean).join(' \u00b7 ');
  }

  async function load() {
    const mine = ++seq;
    subtitle.textContent = describeFilters();
    setChildren(listSlot, loading('Loading events\u2026'));
    moreSlot.replaceChildren();
    try {
      const list = await api('events', { params: params() });
      if (mine !== seq || !alive) return;
      events = Array.isArray(list) ? list : [];
      more = events.length >= PAGE;
      render();
    } catch (e) {
      if (mine !== seq || !alive) return;
      setChildren(listSlot, errorNotice(e, { title: 'Couldn\u2019t load events', onRetry: load }));
    }
  }

  async function loadMore(button) {
    const last = events[events.length - 1];
    if (!last) return;
    const mine = seq;
    button.disabled = true;
    button.classList.add('busy');
    try {
      const list = await api('events', { params: params({ before: last.id }) });
      if (mine !== seq || !alive) return;
      const known = new Set(events.map((e) => e.id));
      const page = (Array.isArray(list) ? list : []).filter((e) => !known.has(e.id));
      events.push(...page);
      more = (list?.length || 0) >= PAGE;
      render();
    } catch (e) {
      if (mine !== seq || !alive) return;
      setChildren(moreSlot, errorNotice(e, { title: 'Couldn\u2019t load more events', onRetry: () => render() }));
    }
  }

  /** The newest page again, merged in: new events on top, ended ones updated. */
  async function refreshNewest() {
    const mine = seq;
    let list;
    try { list = await api('events', { params: params() }); } catch { return; }
    if (mine !== seq || !alive || !Array.isArray(list)) return;
    const byId = new Map(list.map((e) => [e.id, e]));
    events = events.map((e) => byId.get(e.id) || e);
    const known = new Set(events.map((e) => e.id));
    const newest = events[0]?.start_us ?? -Infinity;
    const fresh = list.filter((e) => !known.has(e.id) && e.start_us >= newest);
    if (!events.length) more = list.length >= PAGE;
    events = [...fresh, ...events].sort((a, b) => (b.start_us - a.start_us) || (b.id - a.id));
    render();
  }

  function render() {
    if (!events.length) {
      setChildren(listSlot, emptyState({
        iconName: 'bell', testid: 'events-empty', title: 'No events',
        text: camera || kind || day
          ? 'Nothing matches these filters. Try another camera, kind or day.'
          : 'Motion and doorbell presses show up here as they happen, on the cameras you may see.',
      }));
      moreSlot.replaceChildren();
      subtitle.textContent = describeFilters();
      return;
    }
    subtitle.textContent = `${describeFilters()} \u00b7 ${events.length}${more ? '+' : ''} event${events.length === 1 ? '' : 's'}`;
    const groups = [];
    for (const e of events) {
      const d = dayStr(new Date(e.start_us / 1000));
      if (!groups.length || groups[groups.length - 1].day !== d) groups.push({ day: d, items: [] });
      groups[groups.length - 1].items.push(e);
    }
    const used = new Set();
    setChildren(listSlot, groups.map((g) => h('section', { class: 'ev-day', 'data-day': g.day },
      h('h2', { class: 'ev-day-title' }, fmtDay(g.day)),
      h('ul', { class: 'ev-list card', 'data-testid': 'events-list' }, g.items.map((e) => { used.add(e.id); return row(e); })))));
    for (const id of [...rowCache.keys()]) if (!used.has(id)) rowCache.delete(id);
    if (more) {
      const button = h('button', { type: 'button', class: 'btn show-more', 'data-testid': 'events-more' }, 'Load more');
      button.addEventListener('click', () => loadMore(button));
      setChildren(moreSlot, button);
    } else {
      moreSlot.replaceChildren();
    }
  }

  /** One event; rows of unchanged events are reused (their thumbnails stay loaded). */
  function row(e) {
    const key = `${e.end_us}|${e.has_thumbnail}|${e.score}`;
    const cached = rowCache.get(e.id);
    if (cached && cached.key === key) return cached.el;
    const start = e.start_us / 1000;
    const thumb = eventThumbnail(e);
    const duration = eventDuration(e);
    const info = h('div', { class: 'ev-info' },
      h('div', { class: 'ev-line' }, kindBadge(e.kind), h('strong', { class: 'ev-camera', 'data-testid': 'event-camera' }, e.camera)),
      h('div', { class: 'ev-line muted small' },
        h('time', { class: 'ev-time', datetime: e.start, 'data-testid': 'event-time' }, fmtTime(start)),
        duration ? h('span', { class: `ev-duration${duration === 'ongoing' ? ' is-ongoing' : ''}`, 'data-testid': 'event-duration' }, duration) : null));
    const href = eventHref(e.camera, start);
    const label = `${kindLabel(e.kind)} on ${e.camera} at ${fmtTime(start)}`;
    const main = href
      ? h('a', { class: 'ev-main', href, 'data-testid': 'event-play', 'aria-label': `${label}: ${href.includes('/timeline') ? 'play' : 'watch live'}` },
        thumb, info, h('span', { class: 'ev-go', html: icon(href.includes('/timeline') ? 'play' : 'live') }))
      : h('div', { class: 'ev-main' }, thumb, info);
    const el = h('li', {
      class: `ev-row kind-${cssKind(e.kind)}`, 'data-testid': 'event-row', 'data-event-id': String(e.id),
      'data-camera': e.camera, 'data-kind': e.kind, 'data-ongoing': String(e.end_us === null),
    }, main);
    rowCache.set(e.id, { key, el, thumb });
    return el;
  }

  // Unlocked or locked: the thumbnails follow.
  let wasLocked = null;
  cleanups.push(onStatus((s) => {
    if (s.locked === wasLocked) return;
    wasLocked = s.locked;
    for (const { thumb } of rowCache.values()) {
      if (s.locked === false && thumb.dataset.state !== 'loaded') thumb.dataset.state = '';
      thumb.refresh();
    }
  }));

  // New and ended events, as they happen (a burst of notices makes one request).
  let refreshTimer = null;
  cleanups.push(onNotice((n) => {
    if (camera && n.camera !== camera) return;
    if (kind && n.kind !== kind) return;
    if (day && day !== dayStr(new Date(n.time_us / 1000)) && n.phase !== 'end') return;
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refreshNewest, 300);
  }));
  cleanups.push(() => clearTimeout(refreshTimer));

  load();
  return () => { alive = false; cleanups.forEach((c) => c()); };
}
