// #/storage — how much of the archive budget each camera uses, and what the disk has left.

import { api } from '../api.js';
import { h, every, fmtBytes, fmtSince, iso, parseTime, setChildren, loading, DAY, MIN } from '../util.js';
import { icon } from '../icons.js';
import { errorNotice, emptyState, pageHead } from '../ui.js';

const COLORS = 8; // --cam-0 … --cam-7 in style.css

function meter({ value, max, label, testid, camera, segments, color }) {
  const pct = max > 0 ? Math.min(100, (value / max) * 100) : 0;
  const bar = h('div', {
    class: `meter${pct >= 95 ? ' is-full' : pct >= 80 ? ' is-high' : ''}`, role: 'meter', 'aria-label': label,
    'aria-valuemin': '0', 'aria-valuemax': String(max || 0), 'aria-valuenow': String(value || 0),
    'aria-valuetext': `${fmtBytes(value)} of ${fmtBytes(max)} (${Math.round(pct)}%)`,
    'data-testid': testid, 'data-camera': camera, 'data-percent': pct.toFixed(1),
  });
  if (segments) {
    for (const s of segments) {
      const seg = h('span', { class: 'meter-fill', title: `${s.name}: ${fmtBytes(s.value)}` });
      seg.style.background = `var(--cam-${s.color})`;
      seg.style.width = `${max > 0 ? (s.value / max) * 100 : 0}%`;
      bar.append(seg);
    }
  } else {
    const fill = h('span', { class: 'meter-fill' });
    fill.style.width = `${pct}%`;
    if (color !== undefined && pct < 80) fill.style.background = `var(--cam-${color})`;
    bar.append(fill);
  }
  return bar;
}

export function mount(root) {
  const body = h('div', { class: 'storage' });
  root.append(pageHead({ title: 'Storage', subtitle: 'Recordings are kept until the budget is reached; then the oldest clips make room.' }), body);
  body.append(loading('Loading storage\u2026'));

  async function refresh() {
    let s;
    try {
      s = await api('storage');
    } catch (e) {
      setChildren(body, errorNotice(e, { title: 'Couldn\u2019t load storage', onRetry: refresh }));
      return;
    }
    render(s, await recordingNow(s.cameras || []));
  }

  /**
   * Cameras with a clip being written now. The storage API counts that open clip (and its
   * start is `oldest` on a new install), so the page counts it apart from the closed clips.
   * The open clip's end is kept current while it is written, so a short window finds it.
   */
  async function recordingNow(cams) {
    const now = Date.now();
    const open = new Set();
    await Promise.all(cams.map(async (c) => {
      try {
        const t = await api(`cameras/${encodeURIComponent(c.name)}/timeline`, { params: { start: iso(now - 15 * MIN), end: iso(now + MIN) } });
        if (t?.recording) open.add(c.name);
      } catch { /* count it as closed: the storage numbers still show */ }
    }));
    return open;
  }

  function render(s, open) {
    const cams = Array.isArray(s.cameras) ? s.cameras : [];
    const used = s.used_bytes ?? cams.reduce((a, c) => a + (c.bytes || 0), 0);
    const max = s.max_bytes || 0;
    const free = s.disk_free_bytes;
    const closed = (c) => Math.max(0, (c.clips || 0) - (open.has(c.name) ? 1 : 0));
    const clipsTotal = cams.reduce((a, c) => a + closed(c), 0);
    const recordingCount = cams.filter((c) => open.has(c.name)).length;
    const oldest = cams.map((c) => parseTime(c.oldest)).filter(Boolean).sort((a, b) => a - b)[0] || null;
    const pct = max ? Math.round((used / max) * 100) : 0;

    const segments = cams.map((c, i) => ({ name: c.name, value: c.bytes || 0, color: i % COLORS }));
    const legend = h('ul', { class: 'legend storage-legend' },
      cams.map((c, i) => h('li', null, h('span', { class: `sw cam-color-${i % COLORS}` }), `${c.name} `, h('span', { class: 'muted' }, fmtBytes(c.bytes)))));

    const warnings = [];
    if (free !== null && free !== undefined && max && free < max - used) {
      warnings.push(h('div', { class: 'notice warn', 'data-testid': 'storage-disk-warning' },
        h('span', { class: 'notice-icon', html: icon('alert') }),
        h('div', { class: 'notice-body' }, h('strong', null, 'The disk is smaller than the budget'),
          h('p', null, `Only ${fmtBytes(free)} is free on the disk, but the budget allows ${fmtBytes(max - used)} more. hearth keeps a reserve and deletes the oldest clips earlier; consider lowering storage.max_bytes.`))));
    }

    const total = h('section', { class: 'card storage-total', 'aria-labelledby': 'st-total' },
      h('div', { class: 'card-head' }, h('h2', { id: 'st-total' }, 'Archive'), h('span', { class: 'big-pct' }, `${pct}%`)),
      h('p', { class: 'storage-headline' }, h('strong', null, fmtBytes(used)), h('span', { class: 'muted' }, ` of ${fmtBytes(max)} budget`)),
      meter({ value: used, max, label: 'Archive budget used', testid: 'storage-total-bar', segments }),
      legend,
      h('dl', { class: 'stats' },
        stat('Free on disk', fmtBytes(free), 'storage-disk-free'),
        stat('Clips', [clipsTotal.toLocaleString(), recordingCount ? h('span', { class: 'stat-extra' }, ` + ${recordingCount} recording`) : null], 'storage-clip-count'),
        stat('Recorded since', oldest ? fmtSince(oldest) : 'Nothing yet', 'storage-oldest'),
        stat('History', s.max_age_days
          ? [`Keeps up to ${plural(s.max_age_days, 'day')}`, oldest ? h('span', { class: 'stat-extra' }, ` (${plural(historyDays(oldest), 'day')} so far)`) : null]
          : oldest ? `${plural(historyDays(oldest), 'day')} so far` : '\u2014', 'storage-history')));

    const perCam = cams.length
      ? h('section', { class: 'card', 'aria-labelledby': 'st-cams' },
        h('div', { class: 'card-head' }, h('h2', { id: 'st-cams' }, 'Per camera')),
        h('ul', { class: 'cam-usage' }, cams.map((c, i) => {
          const own = c.max_bytes || null;
          const o = parseTime(c.oldest);
          return h('li', { class: 'cam-usage-row', 'data-testid': 'storage-camera', 'data-camera': c.name },
            h('div', { class: 'cam-usage-head' },
              h('span', { class: 'cam-usage-name' }, h('span', { class: `sw cam-color-${i % COLORS}` }), c.name),
              h('span', { class: 'cam-usage-bytes' }, fmtBytes(c.bytes), h('span', { class: 'muted' }, own ? ` of ${fmtBytes(own)}` : ''))),
            meter({ value: c.bytes || 0, max: own || max, label: `${c.name}: ${own ? 'own budget' : 'share of the archive'} used`, testid: 'storage-camera-bar', camera: c.name, color: i % COLORS }),
            h('p', { class: 'muted small', 'data-testid': 'storage-camera-summary' },
              plural(closed(c), 'clip'),
              open.has(c.name) ? ' + 1 recording' : '',
              o ? ` \u00b7 ${open.has(c.name) ? 'recording' : 'recorded'} since ${fmtSince(o)}` : ' \u00b7 nothing recorded yet',
              own ? '' : ' \u00b7 shares the archive budget'));
        })))
      : emptyState({ iconName: 'storage', title: 'Nothing stored yet', text: 'Clips appear here once a camera has recorded.' });

    setChildren(body, warnings, h('div', { class: 'storage-grid' }, total, perCam));
  }

  /** Whole days of history, counting the one in progress: a new install has "1 day". */
  function historyDays(oldest) {
    return Math.max(1, Math.ceil((Date.now() - oldest) / DAY));
  }

  function plural(n, word) {
    return `${n.toLocaleString()} ${word}${n === 1 ? '' : 's'}`;
  }

  function stat(label, value, testid) {
    return h('div', { class: 'stat' }, h('dt', null, label), h('dd', { 'data-testid': testid }, value));
  }

  return every(30_000, refresh);
}
