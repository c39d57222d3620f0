// Sign-in form: POST /api/login, then on to ?next= (a path of this site
// only) or the account's own unit.
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { login } from '../api.js';

export async function render(ctx) {
  const msg = h('p', { class: 'error', role: 'alert', id: 'login-error' });
  const user = h('input', { name: 'user', id: 'user', autocomplete: 'username', required: true, autofocus: true });
  const pass = h('input', { name: 'password', id: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const form = h('form', { class: 'login', id: 'login-form' },
    h('h1', null, `Rollcall · ${t('signin')}`),
    h('label', null, t('user'), user),
    h('label', null, t('password'), pass),
    h('button', { type: 'submit', class: 'primary' }, t('signin')),
    msg);
  form.addEventListener('submit', async e => {
    e.preventDefault();
    msg.textContent = '';
    try {
      const me = await login(user.value, pass.value);
      const next = ctx.params.get('next');
      ctx.navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : `/unit/${me.unit.code}/today`, true);
    } catch (err) {
      msg.textContent = err.status === 429 ? t('throttled') : err.status === 401 ? t('bad_login') : `${t('error')}: ${err.message}`;
    }
  });
  ctx.main.append(form);
  user.focus();
}
