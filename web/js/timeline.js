// The day bar: recorded spans, gaps (with their reason), the clip being recorded now, the
// "now" marker, a playhead, and events (motion as a span along the top, a doorbell press or
// other instant as a pin). Click, drag (mouse or touch) or use the arrow keys to pick a time;
// click an event, or press [ and ], to go to one; the page decides what to play.
//
// All times here are epoch milliseconds; pages convert the API's microseconds once.

import { h, clamp, fmtHM, fmtTime, tickFormatter, MIN, HOUR } from './util.js';

const TICK_STEPS = [MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR];
const MERGE_MS = 2000; // clips closer than this draw as one span
const LABEL_GAP_PX = 18; // free space between two tick labels

export function humanReason(reason) {
  if (!reason) return 'No recording';
  const s = String(reason).replace(/[_-]+/g, ' ').trim();
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export class Timeline {
  /**
   * @param {{start:number,end:number,compact?:boolean,label?:string,
   *          onSeek?:(t:number)=>void,onScrub?:(t:number)=>void,onZoomKey?:(dir:number)=>void,
   *          onEvent?:(e:object)=>void}} o
   */
  constructor({ start, end, compact = false, label = 'Timeline', onSeek, onScrub, onZoomKey, onEvent }) {
    this.start = start;
    this.end = end;
    this.v0 = start;
    this.v1 = end;
    this.compact = compact;
    this.onSeek = onSeek;
    this.onScrub = onScrub;
    this.onZoomKey = onZoomKey;
    this.onEvent = onEvent;
    this.spans = [];      // merged recorded spans [{start,end}]
    this.clips = [];
    this.gaps = [];       // [{start,end,reason}]
    this.recording = null; // {start}
    this.events = [];     // [{id, kind, start, end (null: ongoing), label}]
    this.now = Date.now();
    this.playhead = null;
    this.dragging = false;
    this.keyCursor = null;
    this.keyTimer = null;
    this.emptyText = null;

    this.ticks = h('div', { class: 'tl-ticks', 'aria-hidden': 'true' });
    this.grid = h('div', { class: 'tl-grid', 'aria-hidden': 'true' });
    this.spanLayer = h('div', { class: 'tl-layer tl-spans' });
    this.gapLayer = h('div', { class: 'tl-layer tl-gaps' });
    this.recEl = h('div', { class: 'tl-recording', 'data-testid': 'timeline-recording', hidden: true });
    this.futureEl = h('div', { class: 'tl-future', hidden: true });
    this.eventLayer = h('div', { class: 'tl-layer tl-events', 'data-testid': 'timeline-events' });
    this.nowEl = h('div', { class: 'tl-now', 'data-testid': 'timeline-now', hidden: true });
    this.playheadEl = h('div', { class: 'tl-playhead', 'data-testid': 'timeline-playhead', hidden: true },
      h('span', { class: 'tl-handle' }));
    this.hoverLabel = h('span', { class: 'tl-hover-label' });
    this.hoverEl = h('div', { class: 'tl-hover', hidden: true, 'aria-hidden': 'true' }, this.hoverLabel);
    this.emptyEl = h('div', { class: 'tl-empty', hidden: true });
    this.track = h('div', {
      class: 'tl-track', 'data-testid': 'timeline-bar', role: 'slider', tabindex: '0',
      'aria-label': label, 'aria-valuemin': '0', 'aria-valuemax': String(Math.round((end - start) / 1000)),
    }, this.grid, this.futureEl, this.nowEl, this.spanLayer, this.recEl, this.gapLayer, this.eventLayer,
    this.emptyEl, this.playheadEl);

    this.overviewWin = h('div', { class: 'tl-ov-window' });
    this.overviewSpans = h('div', { class: 'tl-layer' });
    this.overview = h('div', { class: 'tl-overview', hidden: true, 'data-testid': 'timeline-overview', 'aria-hidden': 'true' },
      this.overviewSpans, this.overviewWin);

    this.el = h('div', { class: `timeline${compact ? ' compact' : ''}`, 'data-testid': 'timeline' },
      this.overview, this.ticks, h('div', { class: 'tl-track-wrap' }, this.track, this.hoverEl));

    this.bindPointer();
    this.bindKeys();
    this.bindOverview();
    this.labelWidths = new Map();
    this.resizeObs = new ResizeObserver(() => this.renderTicks());
    this.resizeObs.observe(this.track);
    this.render();
  }

  destroy() {
    this.resizeObs.disconnect();
    clearTimeout(this.keyTimer);
  }

  /** `{clips:[{id,start,end}], gaps:[{start,end,reason}], recording:{start}|null}` in ms. */
  setData({ clips = [], gaps = [], recording = null }) {
    this.clips = clips;
    this.gaps = gaps;
    this.recording = recording;
    const spans = [];
    for (const c of clips) {
      const last = spans[spans.length - 1];
      if (last && c.start - last.end <= MERGE_MS) last.end = Math.max(last.end, c.end);
      else spans.push({ start: c.start, end: c.end });
    }
    this.spans = spans;
    this.render();
  }

  /**
   * Events as marks: `[{id, kind, start, end, label}]` in ms, `end` null while going on. One
   * with a duration is a span along the top of the bar; an instant (a doorbell press) a pin.
   */
  setEvents(events) {
    this.events = (events || []).slice().sort((a, b) => a.start - b.start);
    this.renderItems();
  }

  /**
   * The event before (dir -1) or after (dir 1) the one being watched, or null. Playing an event
   * starts a few seconds before it, so "being watched" is `preRoll` ms after the playhead.
   */
  eventNear(dir, preRoll = 5000) {
    const at = (this.playhead ?? this.now) + preRoll;
    const list = this.events;
    if (dir > 0) return list.find((e) => e.start > at + 1000) || null;
    for (let i = list.length - 1; i >= 0; i--) if (list[i].start < at - 1000) return list[i];
    return null;
  }

  eventMark(e) {
    const instant = e.end !== null && e.end !== undefined && e.end - e.start < 1000;
    const kind = /^[a-z0-9_]{1,32}$/.test(e.kind || '') ? e.kind : 'other';
    const el = h('button', {
      type: 'button', tabindex: '-1', class: `tl-event kind-${kind} ${instant ? 'is-point' : 'is-span'}${e.end === null ? ' is-ongoing' : ''}`,
      'data-testid': 'timeline-event', 'data-kind': e.kind, 'data-event-id': String(e.id), title: e.label || e.kind,
      'aria-label': e.label || e.kind,
    });
    // A mark is not the bar: pressing it must not start a seek by dragging.
    el.addEventListener('pointerdown', (ev) => ev.stopPropagation());
    el.addEventListener('click', (ev) => { ev.stopPropagation(); this.onEvent?.(e); });
    if (instant) {
      el.style.left = `${this.pct(e.start)}%`;
    } else {
      this.place(el, e.start, e.end ?? Math.max(this.now, e.start));
    }
    return el;
  }

  setEmptyText(text) {
    this.emptyText = text;
    this.emptyEl.hidden = !text;
    this.emptyEl.textContent = text || '';
  }

  setNow(ms) {
    this.now = ms;
    this.renderItems();
  }

  /** Where playback is (ms) or null. Follows it when zoomed in, unless the user is dragging. */
  setPlayhead(ms) {
    this.playhead = ms;
    if (ms !== null && !this.dragging && this.isZoomed()) {
      const span = this.v1 - this.v0;
      if (ms < this.v0 + span * 0.02 || ms > this.v1 - span * 0.05) this.setView(ms - span * 0.25, span);
    }
    this.placePlayhead();
    this.updateAria();
  }

  isZoomed() { return this.v1 - this.v0 < this.end - this.start - 1000; }

  /** Show `span` ms starting at `v0` (clamped to the day). */
  setView(v0, span) {
    span = Math.min(span, this.end - this.start);
    this.v0 = clamp(v0, this.start, this.end - span);
    this.v1 = this.v0 + span;
    this.render();
  }

  /** Zoom to `span` ms around `center`. */
  zoom(span, center) {
    center ??= this.playhead ?? clamp(this.now, this.start, this.end);
    this.setView(center - span / 2, span);
  }

  pct(t) { return ((t - this.v0) / (this.v1 - this.v0)) * 100; }

  place(el, a, b) {
    const l = this.pct(Math.max(a, this.v0));
    const r = this.pct(Math.min(b, this.v1));
    el.style.left = `${l}%`;
    el.style.width = `${Math.max(0, r - l)}%`;
  }

  /**
   * Like `place`, but anchored at the end: a span too short to see grows to its CSS
   * min-width towards the past, so it never hides under the clip being recorded after it.
   */
  placeEnd(el, a, b) {
    const l = this.pct(Math.max(a, this.v0));
    const r = this.pct(Math.min(b, this.v1));
    el.style.left = 'auto';
    el.style.right = `${100 - r}%`;
    el.style.width = `${Math.max(0, r - l)}%`;
  }

  render() {
    this.renderItems();
    this.renderTicks();
    this.renderOverview();
  }

  renderItems() {
    const { v0, v1 } = this;
    this.spanLayer.replaceChildren(...this.spans.filter((s) => s.end > v0 && s.start < v1).map((s) => {
      const el = h('div', { class: 'tl-span', 'data-testid': 'timeline-span' });
      this.placeEnd(el, s.start, s.end);
      return el;
    }));
    this.gapLayer.replaceChildren(...this.gaps.filter((g) => g.end > v0 && g.start < v1).map((g) => {
      const reason = humanReason(g.reason);
      const el = h('div', {
        class: 'tl-gap', 'data-testid': 'timeline-gap', title: `${reason} · ${fmtHM(g.start)}–${fmtHM(g.end)}`,
        'data-reason': g.reason || '',
      });
      this.place(el, g.start, g.end);
      return el;
    }));
    this.eventLayer.replaceChildren(...this.events
      .filter((e) => e.start <= v1 && (e.end ?? this.now) >= v0)
      .map((e) => this.eventMark(e)));
    const now = this.now;
    if (this.recording && this.recording.start < v1 && now > v0) {
      this.recEl.hidden = false;
      this.place(this.recEl, this.recording.start, Math.min(now, this.end));
    } else {
      this.recEl.hidden = true;
    }
    const nowVisible = now >= v0 && now <= v1;
    this.nowEl.hidden = !nowVisible;
    if (nowVisible) this.nowEl.style.left = `${this.pct(now)}%`;
    if (now < v1) {
      this.futureEl.hidden = false;
      this.place(this.futureEl, Math.max(now, v0), v1);
    } else {
      this.futureEl.hidden = true;
    }
    this.placePlayhead();
    this.renderOverview();
  }

  placePlayhead() {
    const p = this.playhead;
    const visible = p !== null && p >= this.v0 && p <= this.v1;
    this.playheadEl.hidden = !visible;
    if (visible) this.playheadEl.style.left = `${this.pct(p)}%`;
  }

  /** Widest label a formatter makes (px), measured once in the ticks' font. */
  labelWidth(fmt) {
    if (this.labelWidths.has(fmt.key)) return this.labelWidths.get(fmt.key);
    // Late-morning and late-evening times: the widest on either clock.
    const samples = [new Date(2000, 0, 1, 10, 58), new Date(2000, 0, 1, 22, 58), new Date(2000, 0, 1, 12, 0)].map((d) => fmt.format(d));
    let width = Math.max(...samples.map((t) => t.length)) * 7;
    const cs = this.ticks.isConnected ? getComputedStyle(this.ticks) : null;
    if (cs && cs.fontSize) {
      Timeline.canvas ??= document.createElement('canvas');
      const ctx = Timeline.canvas.getContext('2d');
      ctx.font = `${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
      width = Math.max(...samples.map((t) => ctx.measureText(t).width));
      this.labelWidths.set(fmt.key, width);
    }
    return width;
  }

  renderTicks() {
    const width = this.track.clientWidth || 800;
    const span = this.v1 - this.v0;
    // The finest step whose labels (in this locale's format) fit side by side.
    const labelStep = TICK_STEPS.find((s) => (s / span) * width >= this.labelWidth(tickFormatter(s)) + LABEL_GAP_PX) || 12 * HOUR;
    const fmt = tickFormatter(labelStep);
    const half = this.labelWidth(fmt) / 2;
    // Minor marks: every hour on a day view, else the next finer step that fits.
    const minorStep = [...TICK_STEPS].reverse().find((s) => s < labelStep && labelStep % s === 0 && (s / span) * width >= 10) || labelStep;
    const labels = [];
    const lines = [];
    const first = this.start + Math.ceil((this.v0 - this.start) / minorStep) * minorStep;
    for (let t = first; t <= this.v1 + 1; t += minorStep) {
      const major = (t - this.start) % labelStep === 0;
      const line = h('span', { class: major ? 'major' : 'minor' });
      line.style.left = `${this.pct(t)}%`;
      lines.push(line);
      if (major) {
        const lab = h('span', { class: 'tl-tick' }, t >= this.end ? fmt.formatEnd(t) : fmt.format(t));
        lab.style.left = `${this.pct(t)}%`;
        labels.push({ el: lab, x: (this.pct(t) / 100) * width });
      }
    }
    // A label that would stick out past either end is aligned to that end instead of centred,
    // or left out if that would bring it too close to its neighbour.
    const w = half * 2;
    const keep = labels.filter((l, i) => {
      if (l.x < half) {
        l.el.classList.add('first');
        l.el.style.left = '0';
        return !labels[i + 1] || labels[i + 1].x - half >= w + 6;
      }
      if (l.x > width - half) {
        l.el.classList.add('last');
        l.el.style.left = '100%';
        return !labels[i - 1] || width - w - (labels[i - 1].x + half) >= 6;
      }
      return true;
    });
    this.ticks.replaceChildren(...keep.map((l) => l.el));
    this.grid.replaceChildren(...lines);
  }

  renderOverview() {
    if (!this.overview) return;
    const zoomed = this.isZoomed() && !this.compact;
    this.overview.hidden = !zoomed;
    if (!zoomed) return;
    const total = this.end - this.start;
    const p = (t) => ((t - this.start) / total) * 100;
    this.overviewSpans.replaceChildren(...this.spans.map((s) => {
      const el = h('div', { class: 'tl-span' });
      el.style.left = `${p(s.start)}%`;
      el.style.width = `${Math.max(0.15, p(s.end) - p(s.start))}%`;
      return el;
    }));
    this.overviewWin.style.left = `${p(this.v0)}%`;
    this.overviewWin.style.width = `${p(this.v1) - p(this.v0)}%`;
  }

  timeAt(clientX) {
    const r = this.track.getBoundingClientRect();
    const f = clamp((clientX - r.left) / r.width, 0, 1);
    return this.v0 + f * (this.v1 - this.v0);
  }

  /** What is at time t, for the hover label and aria-valuetext. */
  describe(t) {
    if (t > this.now) return 'Not yet recorded';
    if (this.recording && t >= this.recording.start) return 'Recording now';
    for (const g of this.gaps) if (t >= g.start && t < g.end) return humanReason(g.reason);
    for (const s of this.spans) if (t >= s.start && t < s.end) return 'Recorded';
    return 'No recording';
  }

  showHover(t) {
    const r = this.track.getBoundingClientRect();
    const x = ((t - this.v0) / (this.v1 - this.v0)) * r.width;
    this.hoverEl.hidden = false;
    this.hoverEl.style.left = `${x}px`;
    const what = this.describe(t);
    this.hoverLabel.textContent = `${fmtTime(t)} · ${what}`;
    this.hoverEl.classList.toggle('flip-left', x > r.width - 90);
    this.hoverEl.classList.toggle('flip-right', x < 90);
  }

  hideHover() { this.hoverEl.hidden = true; }

  bindPointer() {
    const tr = this.track;
    let pointerId = null;
    tr.addEventListener('pointerdown', (ev) => {
      if (ev.button !== 0) return;
      pointerId = ev.pointerId;
      tr.setPointerCapture(ev.pointerId);
      this.dragging = true;
      this.el.classList.add('dragging');
      const t = Math.min(this.timeAt(ev.clientX), this.now);
      this.playhead = t;
      this.placePlayhead();
      this.showHover(t);
      this.onScrub?.(t);
    });
    tr.addEventListener('pointermove', (ev) => {
      const t = this.timeAt(ev.clientX);
      if (this.dragging && ev.pointerId === pointerId) {
        const tt = Math.min(t, this.now);
        this.playhead = tt;
        this.placePlayhead();
        this.showHover(tt);
        this.onScrub?.(tt);
      } else if (ev.pointerType === 'mouse') {
        this.showHover(t);
      }
    });
    const finish = (ev, commit) => {
      if (!this.dragging || ev.pointerId !== pointerId) return;
      this.dragging = false;
      pointerId = null;
      this.el.classList.remove('dragging');
      if (ev.pointerType !== 'mouse') this.hideHover();
      if (commit) this.onSeek?.(Math.min(this.timeAt(ev.clientX), this.now));
    };
    tr.addEventListener('pointerup', (ev) => finish(ev, true));
    tr.addEventListener('pointercancel', (ev) => { finish(ev, false); this.hideHover(); });
    tr.addEventListener('pointerleave', () => { if (!this.dragging) this.hideHover(); });
    tr.addEventListener('wheel', (ev) => {
      if (!this.isZoomed()) return;
      const d = Math.abs(ev.deltaX) > Math.abs(ev.deltaY) ? ev.deltaX : ev.shiftKey ? ev.deltaY : 0;
      if (!d) return;
      ev.preventDefault();
      const span = this.v1 - this.v0;
      this.setView(this.v0 + (d / tr.clientWidth) * span, span);
    }, { passive: false });
  }

  keyStep() {
    const span = this.v1 - this.v0;
    if (span <= 2 * HOUR) return 10_000;
    if (span <= 8 * HOUR) return MIN;
    return 5 * MIN;
  }

  bindKeys() {
    this.track.addEventListener('keydown', (ev) => {
      let base = this.keyCursor ?? this.playhead ?? Math.min(this.now, this.end - 1);
      let t = null;
      const step = this.keyStep() * (ev.shiftKey ? 6 : 1);
      switch (ev.key) {
        case 'ArrowLeft': case 'ArrowDown': t = base - step; break;
        case 'ArrowRight': case 'ArrowUp': t = base + step; break;
        case 'PageUp': t = base - HOUR; break;
        case 'PageDown': t = base + HOUR; break;
        case 'Home': t = this.start; break;
        case 'End': t = Math.min(this.now, this.end - 1000); break;
        case 'Enter': case ' ': t = base; break;
        case '+': case '=': this.onZoomKey?.(1); ev.preventDefault(); return;
        case '-': case '_': this.onZoomKey?.(-1); ev.preventDefault(); return;
        case '[': case ']': {
          const e = this.eventNear(ev.key === ']' ? 1 : -1);
          ev.preventDefault();
          if (e) this.onEvent?.(e);
          return;
        }
        default: return;
      }
      ev.preventDefault();
      t = clamp(t, this.start, Math.min(this.now, this.end - 1));
      this.keyCursor = t;
      this.playhead = t;
      if (this.isZoomed() && (t < this.v0 || t > this.v1)) this.zoom(this.v1 - this.v0, t);
      this.placePlayhead();
      this.updateAria();
      this.showHover(t);
      clearTimeout(this.keyTimer);
      const delay = ev.key === 'Enter' || ev.key === ' ' ? 0 : 400;
      this.keyTimer = setTimeout(() => {
        this.keyCursor = null;
        this.hideHover();
        this.onSeek?.(t);
      }, delay);
    });
    this.track.addEventListener('blur', () => this.hideHover());
  }

  bindOverview() {
    let down = false;
    const move = (ev) => {
      const r = this.overview.getBoundingClientRect();
      const f = clamp((ev.clientX - r.left) / r.width, 0, 1);
      const span = this.v1 - this.v0;
      this.setView(this.start + f * (this.end - this.start) - span / 2, span);
    };
    this.overview.addEventListener('pointerdown', (ev) => {
      down = true;
      this.overview.setPointerCapture(ev.pointerId);
      move(ev);
    });
    this.overview.addEventListener('pointermove', (ev) => { if (down) move(ev); });
    this.overview.addEventListener('pointerup', () => { down = false; });
    this.overview.addEventListener('pointercancel', () => { down = false; });
  }

  updateAria() {
    const t = this.playhead;
    if (t === null) {
      this.track.removeAttribute('aria-valuenow');
      this.track.setAttribute('aria-valuetext', 'Nothing selected');
      return;
    }
    this.track.setAttribute('aria-valuenow', String(Math.round((t - this.start) / 1000)));
    this.track.setAttribute('aria-valuetext', `${fmtTime(t)}, ${this.describe(t).toLowerCase()}`);
  }
}
