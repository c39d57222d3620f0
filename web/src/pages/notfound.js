// The not-found page: an unknown path, an unknown unit, or a unit outside
// the account's subtree (the API does not tell these apart, nor does this).
import { h } from '../dom.js';
import { t } from '../i18n.js';

export function render(ctx, me) {
  document.title = `404 · ${t('not_found')} · Rollcall`;
  ctx.main.append(h('section', { class: 'notfound', id: 'not-found' },
    h('div', { class: 'code' }, '404'),
    h('h1', null, t('not_found')),
    h('p', null, t('not_found_text')),
    h('p', null, h('a', { href: me ? `/unit/${me.unit.code}/today` : '/login' }, t('go_home')))));
}
