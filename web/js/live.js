// Live view: fMP4 over a WebSocket into Media Source Extensions.
//
// Protocol (docs/reference/api.md): a text message {codec, mime}, then binary messages — the
// init segment, then one moof+mdat fragment each, starting at a keyframe. Another text message
// means new stream parameters: the MediaSource is rebuilt from scratch.
//
// The <video> element carries data-state = connecting | playing | error | ended (and
// data-detail with the message shown), which browser tests read. `ended`: the hub closed the
// stream with 4401 because the session or the camera's grant is gone; it is not retried.

import { urls } from './api.js';
import { recheckSession } from './session.js';
import { h, codecName } from './util.js';
import { icon } from './icons.js';

const KEEP_SECONDS = 10;      // buffered video kept behind the playhead
const MAX_LAG = 1.5;          // seconds behind the live edge before jumping forward
const TARGET_LAG = 1.0;       // where a jump lands (fragments arrive about once a second)
const STALL_MS = 15_000;      // no message for this long: reconnect
const MAX_QUEUE = 120;        // queued fragments before we give up and resynchronise
const BACKOFF_MAX_MS = 15_000;
const SESSION_ENDED = 4401;   // WebSocket close code: the session or the grant is gone

export function mediaSourceClass() {
  return window.MediaSource || window.ManagedMediaSource || null;
}

function unsupportedMessage(codec) {
  const name = codecName(codec) || codec || 'This';
  if (name === 'H.265') {
    return 'This browser can\u2019t play H.265 (HEVC) video. Try Safari or Edge, or set the camera to H.264.';
  }
  return `This browser can\u2019t play ${name} video.`;
}

export class LivePlayer {
  /**
   * @param {HTMLVideoElement} video
   * @param {string} camera name
   * @param {{onState?: (state: string, detail: string) => void}} opts
   */
  constructor(video, camera, { onState } = {}) {
    this.video = video;
    this.camera = camera;
    this.onState = onState;
    this.ws = null;
    this.ms = null;
    this.sb = null;
    this.objectUrl = null;
    this.queue = [];
    this.attempt = 0;
    this.retryTimer = null;
    this.watchdog = null;
    this.stopped = true;
    this.fatal = null;          // message while the stream cannot be played at all
    this.lastData = 0;
    this.decodeErrors = 0;
    this.state = null;

    video.muted = true;
    video.defaultMuted = true;
    video.playsInline = true;
    video.autoplay = true;
    video.setAttribute('muted', '');
    video.setAttribute('playsinline', '');
    video.setAttribute('autoplay', '');
    video.disableRemotePlayback = true;

    this._onPlaying = () => {
      if (this.ms) {
        this.attempt = 0;
        this.decodeErrors = 0;
        this.setState('playing', '');
      }
    };
    this._onWaiting = () => this.chase();
    this._onVideoError = () => {
      if (this.stopped || !this.ms) return;
      this.decodeErrors++;
      if (this.decodeErrors >= 3) {
        this.fail('The live stream could not be decoded by this browser.');
      } else {
        this.restart();
      }
    };
    this._onVisibility = () => {
      if (this.stopped) return;
      if (document.hidden) this.disconnect();
      else if (!this.ws) { this.attempt = 0; this.connect(); }
    };
  }

  setState(state, detail) {
    if (this.state === state && this.detail === detail) return;
    this.state = state;
    this.detail = detail;
    this.video.dataset.state = state;
    if (detail) this.video.dataset.detail = detail;
    else delete this.video.dataset.detail;
    this.onState?.(state, detail);
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.video.addEventListener('playing', this._onPlaying);
    this.video.addEventListener('waiting', this._onWaiting);
    this.video.addEventListener('error', this._onVideoError);
    document.addEventListener('visibilitychange', this._onVisibility);
    this.watchdog = setInterval(() => this.checkStall(), 2000);
    if (!mediaSourceClass()) {
      this.fail('This browser can\u2019t play live video (no Media Source Extensions). Snapshots and recordings still work.');
      return;
    }
    this.connect();
  }

  /** Close everything; the player can be started again. */
  stop() {
    this.stopped = true;
    clearInterval(this.watchdog);
    this.video.removeEventListener('playing', this._onPlaying);
    this.video.removeEventListener('waiting', this._onWaiting);
    this.video.removeEventListener('error', this._onVideoError);
    document.removeEventListener('visibilitychange', this._onVisibility);
    this.disconnect();
    this.teardownMedia();
  }

  disconnect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000); } catch { /* already closed */ }
    }
  }

  connect() {
    if (this.stopped || this.ws) return;
    if (!this.fatal) this.setState('connecting', this.attempt > 0 ? 'Reconnecting\u2026' : 'Connecting\u2026');
    let ws;
    try {
      ws = new WebSocket(urls.live(this.camera));
    } catch {
      this.scheduleReconnect();
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.lastData = Date.now();
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.lastData = Date.now();
      if (typeof ev.data === 'string') this.onHeader(ev.data);
      else this.onSegment(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (ev.code === SESSION_ENDED) {
        this.ended();
        return;
      }
      this.scheduleReconnect();
    };
    ws.onerror = () => { /* a close event follows */ };
  }

  /**
   * The hub cut the stream (close code 4401): the session ended (password changed elsewhere,
   * revoked, account removed) or this camera's live grant went. The video stops for good;
   * asking the hub who we are brings the login screen when the session is gone.
   */
  ended() {
    this.stop();
    this.setState('ended', 'Your access to this live view has ended.');
    recheckSession();
  }

  scheduleReconnect() {
    if (this.stopped || this.retryTimer) return;
    // Unplayable streams are retried rarely (the camera may be reconfigured).
    const base = this.fatal ? 30_000 : Math.min(BACKOFF_MAX_MS, 1000 * 2 ** this.attempt);
    const delay = base * (0.8 + Math.random() * 0.4);
    this.attempt++;
    if (!this.fatal) this.setState('connecting', 'Reconnecting\u2026');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!document.hidden) this.connect();
    }, delay);
  }

  /** Start over from a fresh socket (new init segment and keyframe). */
  restart() {
    this.disconnect();
    this.teardownMedia();
    this.scheduleReconnect();
  }

  fail(message) {
    this.fatal = message;
    this.setState('error', message);
    this.disconnect();
    this.teardownMedia();
    this.scheduleReconnect();
  }

  checkStall() {
    if (this.stopped || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.lastData > STALL_MS) {
      this.setState('connecting', 'Waiting for video\u2026');
      this.restart();
    }
  }

  onHeader(text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    if (msg.error) {
      this.setState('error', msg.message || msg.error);
      return;
    }
    const mime = msg.mime || (msg.codec ? `video/mp4; codecs="${msg.codec}"` : null);
    const MS = mediaSourceClass();
    if (!mime || !MS) return;
    if (!MS.isTypeSupported(mime)) {
      this.fail(unsupportedMessage(msg.codec || mime));
      return;
    }
    this.fatal = null;
    this.codec = msg.codec;
    if (this.state !== 'playing') this.setState('connecting', this.attempt > 0 ? 'Reconnecting\u2026' : 'Connecting\u2026');
    this.resetMedia(MS, mime);
  }

  onSegment(buf) {
    if (!this.ms) return; // no header yet: nothing to decode with
    this.queue.push(buf);
    if (this.queue.length > MAX_QUEUE) {
      this.restart();
      return;
    }
    this.pump();
  }

  resetMedia(MS, mime) {
    this.teardownMedia();
    const ms = new MS();
    this.ms = ms;
    this.queue = [];
    this.objectUrl = URL.createObjectURL(ms);
    this.video.src = this.objectUrl;
    ms.addEventListener('sourceopen', () => {
      if (this.ms !== ms) return;
      let sb;
      try {
        sb = ms.addSourceBuffer(mime);
      } catch {
        this.fail(unsupportedMessage(this.codec || mime));
        return;
      }
      try { sb.mode = 'segments'; } catch { /* default */ }
      sb.addEventListener('updateend', () => {
        if (this.sb !== sb) return;
        this.chase();
        this.pump();
      });
      sb.addEventListener('error', () => {
        if (this.sb === sb) this.restart();
      });
      this.sb = sb;
      this.pump();
    }, { once: true });
  }

  teardownMedia() {
    this.sb = null;
    this.ms = null;
    this.queue = [];
    if (this.objectUrl) {
      URL.revokeObjectURL(this.objectUrl);
      this.objectUrl = null;
      this.video.removeAttribute('src');
      try { this.video.load(); } catch { /* ignore */ }
    }
  }

  /** Append the next queued message, trimming old video first. One operation at a time. */
  pump() {
    const sb = this.sb;
    if (!sb || sb.updating || !this.ms || this.ms.readyState !== 'open') return;
    const v = this.video;
    try {
      if (sb.buffered.length) {
        const start = sb.buffered.start(0);
        const cut = v.currentTime - KEEP_SECONDS;
        if (cut - start > 2) {
          sb.remove(start, cut);
          return; // continues on updateend
        }
      }
    } catch { /* buffered unavailable while detached */ }
    const next = this.queue.shift();
    if (!next) return;
    try {
      sb.appendBuffer(next);
    } catch (e) {
      if (e.name === 'QuotaExceededError' && sb.buffered.length) {
        this.queue.unshift(next);
        const end = Math.max(sb.buffered.start(0) + 0.5, v.currentTime - 1);
        try { sb.remove(0, end); } catch { this.restart(); }
      } else {
        this.restart();
      }
    }
  }

  /** Stay near the live edge: if we are behind (or outside any buffered range), jump. */
  chase() {
    const v = this.video;
    const b = v.buffered;
    if (!b.length) return;
    const end = b.end(b.length - 1);
    const cur = v.currentTime;
    let inside = false;
    for (let i = 0; i < b.length; i++) if (cur >= b.start(i) && cur <= b.end(i)) inside = true;
    if (!inside || end - cur > MAX_LAG) {
      const lastStart = b.start(b.length - 1);
      v.currentTime = Math.max(lastStart, end - TARGET_LAG);
    }
    if (v.paused) v.play().catch(() => { /* autoplay policy: muted, so rare */ });
  }
}

/**
 * A live video with its overlay (connecting / reconnecting / error), a LIVE badge and a
 * poster from the latest snapshot. `start()` opens the stream, `destroy()` closes it.
 */
export function createLiveView(camera, { className = '', big = false } = {}) {
  const video = h('video', {
    class: 'live-video', 'data-testid': 'live-video', 'data-camera': camera,
    muted: true, playsinline: true, autoplay: true, 'aria-label': `Live video from ${camera}`,
  });
  const overlayText = h('span', { class: 'overlay-text' });
  const overlay = h('div', { class: 'media-overlay', 'aria-live': 'polite' },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }), overlayText);
  const badge = h('span', { class: 'live-badge', hidden: true }, h('span', { class: 'live-dot' }), 'LIVE');
  const el = h('div', { class: `live ${big ? 'live-big' : ''} ${className}`, 'data-state': 'connecting' }, video, overlay, badge);

  const player = new LivePlayer(video, camera, {
    onState(state, detail) {
      el.dataset.state = state;
      badge.hidden = state !== 'playing';
      overlay.hidden = state === 'playing';
      const stopped = state === 'error' || state === 'ended';
      overlay.classList.toggle('error', stopped);
      overlay.querySelector('.spinner').hidden = stopped;
      if (stopped) {
        overlayText.innerHTML = '';
        overlayText.append(h('span', { class: 'overlay-icon', html: icon('alert') }), h('span', null, detail));
      } else {
        overlayText.textContent = detail || '';
      }
    },
  });
  video.dataset.state = 'connecting';
  overlayText.textContent = 'Connecting\u2026';

  return {
    el,
    video,
    player,
    start() {
      video.poster = urls.snapshot(camera);
      player.start();
    },
    destroy() { player.stop(); },
  };
}
