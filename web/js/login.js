// The login screen, and setting up two-factor authentication (TOTP): both full-screen views
// the shell shows instead of the app, and the enrolment also inside the account page.

import { api, ApiError } from './api.js';
import { h, setChildren } from './util.js';
import { icon } from './icons.js';

/** A labelled input; returns `{field, input}`. */
export function labelled(label, attrs) {
  const id = `f-${Math.random().toString(36).slice(2, 9)}`;
  const input = h('input', { id, class: 'input', spellcheck: 'false', autocapitalize: 'off', ...attrs });
  return { input, field: h('div', { class: 'field' }, h('label', { for: id, class: 'label' }, label), input) };
}

/** A submit button that shows it is busy while `work` runs. */
export async function busy(button, work) {
  button.disabled = true;
  button.classList.add('busy');
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.classList.remove('busy');
  }
}

function brand() {
  return h('div', { class: 'auth-brand' }, h('span', { class: 'brand-mark', html: icon('logo') }), h('span', { class: 'brand-name' }, 'hearth'));
}

/**
 * The login form. `notice` explains why it is shown (a session that ended); `onLoggedIn(reply)`
 * runs with `{user, role, must_enroll_totp}` after the hub set the session cookie.
 */
export function loginScreen({ notice, onLoggedIn }) {
  const user = labelled('User name', { name: 'username', autocomplete: 'username', required: true, 'data-testid': 'login-username' });
  const pass = labelled('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, 'data-testid': 'login-password' });
  const code = labelled('Code from your authenticator app', {
    name: 'totp', autocomplete: 'one-time-code', inputmode: 'text', 'data-testid': 'login-totp',
    placeholder: '123456 or a recovery code',
  });
  code.field.hidden = true;
  const codeHint = h('p', { class: 'muted small' }, 'Lost your phone? Enter one of your recovery codes instead.');
  code.field.append(codeHint);
  const err = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'login-error', hidden: true });
  const button = h('button', { type: 'submit', class: 'btn btn-primary btn-wide', 'data-testid': 'login-submit' }, 'Log in');
  let waitTimer = null;

  const form = h('form', { class: 'auth-form', 'data-testid': 'login-form', novalidate: true },
    user.field, pass.field, code.field, err, button);
  const screen = h('main', { class: 'auth-screen', 'data-testid': 'login-screen' },
    h('div', { class: 'auth-card card' },
      brand(),
      h('h1', null, 'Log in'),
      notice ? h('p', { class: 'notice-inline', role: 'status', 'data-testid': 'login-notice' }, notice) : null,
      form,
      h('p', { class: 'muted small auth-foot' }, 'This hub answers only on your home network. Nothing on this page comes from anywhere else.')));

  function say(text) {
    err.textContent = text;
    err.hidden = !text;
  }

  /** Throttled: count down and keep the button off until the hub will listen again. */
  function wait(seconds) {
    clearInterval(waitTimer);
    let left = Math.max(1, seconds);
    const tick = () => {
      if (left <= 0) {
        clearInterval(waitTimer);
        button.disabled = false;
        say('');
        return;
      }
      button.disabled = true;
      say(`Too many failed attempts. Try again in ${left} s.`);
      err.dataset.wait = String(left);
      left--;
    };
    tick();
    waitTimer = setInterval(tick, 1000);
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (button.disabled) return;
    if (!user.input.value.trim() || !pass.input.value) {
      say('Enter your user name and password.');
      (user.input.value.trim() ? pass.input : user.input).focus();
      return;
    }
    say('');
    delete err.dataset.wait;
    const body = { username: user.input.value.trim(), password: pass.input.value };
    if (!code.field.hidden && code.input.value.trim()) body.totp = code.input.value.trim();
    try {
      const reply = await busy(button, () => api('login', { method: 'POST', body }));
      clearInterval(waitTimer);
      onLoggedIn(reply);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.code === 'totp_required') {
        code.field.hidden = false;
        say(code.input.value ? '' : 'Enter the code from your authenticator app.');
        code.input.focus();
      } else if (e.code === 'too_many_attempts') {
        wait(e.retryAfter || 30);
      } else if (e.code === 'login_failed') {
        say('Wrong user name, password or code.');
        code.input.value = '';
        pass.input.select();
        pass.input.focus();
      } else {
        say(e.message);
      }
    }
  });
  requestAnimationFrame(() => user.input.focus());
  return { el: screen, destroy: () => clearInterval(waitTimer) };
}

/** An SVG document's text as an <img>: rendered as an image, it can run nothing. */
export function svgImage(svgText, alt) {
  const bytes = new TextEncoder().encode(svgText);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return h('img', { src: `data:image/svg+xml;base64,${btoa(binary)}`, alt, class: 'qr', 'data-testid': 'totp-qr' });
}

/** The one-time recovery codes, with a way to keep them. */
export function recoveryCodes(codes, { onDone }) {
  const text = `hearth recovery codes (each works once)\n\n${codes.join('\n')}\n`;
  const download = h('a', {
    class: 'btn', download: 'hearth-recovery-codes.txt', 'data-testid': 'recovery-download',
    href: URL.createObjectURL(new Blob([text], { type: 'text/plain;charset=utf-8' })),
  }, h('span', { html: icon('download') }), 'Save as file');
  const saved = h('input', { type: 'checkbox', id: 'rc-saved', 'data-testid': 'recovery-saved' });
  const done = h('button', { type: 'button', class: 'btn btn-primary', disabled: true, 'data-testid': 'recovery-done', onclick: onDone }, 'Done');
  saved.addEventListener('change', () => { done.disabled = !saved.checked; });
  return h('div', { class: 'recovery', 'data-testid': 'recovery' },
    h('h3', null, 'Save your recovery codes'),
    h('p', { class: 'muted' }, 'If you lose your phone, each of these codes logs you in once instead of the code from the app. They are shown only now.'),
    h('ol', { class: 'recovery-codes mono', 'data-testid': 'recovery-codes' }, codes.map((c) => h('li', null, c))),
    h('div', { class: 'form-actions' }, download),
    h('label', { class: 'check' }, saved, h('span', null, 'I have saved these codes somewhere safe')),
    h('div', { class: 'form-actions' }, done));
}

/**
 * Setting up TOTP: ask the hub for a secret, show it as a QR code and as text, confirm with a
 * code from the app, then show the recovery codes. `onDone()` after they were saved.
 */
export function totpEnrolment({ onDone, onCancel }) {
  const el = h('div', { class: 'enrol', 'data-testid': 'totp-enrolment' });
  el.append(h('p', { class: 'muted' }, 'Preparing\u2026'));

  (async () => {
    let start;
    try {
      start = await api('account/totp', { method: 'POST' });
    } catch (e) {
      setChildren(el, h('p', { class: 'form-error', role: 'alert' }, e.message));
      return;
    }
    const code = labelled('6-digit code from the app', {
      name: 'code', autocomplete: 'one-time-code', inputmode: 'numeric', maxlength: '8', required: true, 'data-testid': 'totp-code',
    });
    const err = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'totp-error', hidden: true });
    const button = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'totp-confirm' }, 'Turn on');
    const form = h('form', { class: 'auth-form', novalidate: true }, code.field, err,
      h('div', { class: 'form-actions' }, onCancel ? h('button', { type: 'button', class: 'btn', onclick: onCancel }, 'Cancel') : null, button));
    const secret = start.secret.replace(/(.{4})/g, '$1 ').trim();
    setChildren(el,
      h('ol', { class: 'steps' },
        h('li', null, 'Open an authenticator app on your phone (any TOTP app works, none needs the internet).'),
        h('li', null, 'Scan this code, or type the key below.')),
      h('div', { class: 'qr-box' }, svgImage(start.qr_svg, 'QR code for your authenticator app')),
      h('p', { class: 'secret' }, h('span', { class: 'muted small' }, 'Key: '),
        h('code', { class: 'mono', 'data-testid': 'totp-secret', 'data-secret': start.secret }, secret)),
      h('ol', { class: 'steps', start: '3' }, h('li', null, 'Enter the code the app shows.')),
      form);
    requestAnimationFrame(() => code.input.focus());
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.hidden = true;
      const value = code.input.value.replace(/\s/g, '');
      if (!/^\d{6}$/.test(value)) {
        err.textContent = 'Enter the 6 digits the app shows.';
        err.hidden = false;
        code.input.focus();
        return;
      }
      try {
        const { recovery_codes: codes } = await busy(button, () => api('account/totp/confirm', { method: 'POST', body: { code: value } }));
        setChildren(el, h('p', { class: 'form-ok', 'data-testid': 'totp-enabled' }, 'Two-factor authentication is on.'), recoveryCodes(codes, { onDone }));
      } catch (e) {
        err.textContent = e.code === 'wrong_code' ? 'That code did not match. Check the time on your phone and try the next one.' : e.message;
        err.hidden = false;
        code.input.select();
      }
    });
  })();
  return el;
}

/** Full screen: an admin requires 2FA and this account has none yet. */
export function enrolScreen({ name, onDone, onLogout }) {
  return h('main', { class: 'auth-screen', 'data-testid': 'enrol-screen' },
    h('div', { class: 'auth-card card wide' },
      brand(),
      h('h1', null, 'Set up two-factor authentication'),
      h('p', { class: 'muted' }, `An admin of this hub requires a second step at login for every account. Set it up for ${name} to continue.`),
      totpEnrolment({ onDone }),
      h('p', { class: 'auth-foot' }, h('button', { type: 'button', class: 'link-btn', 'data-testid': 'logout', onclick: onLogout }, 'Log out'))));
}
