// Pieces every unit page shares: the breadcrumb (drill-down path from the
// account's unit), the title line with the day picker, and status words.
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { get, unitPath } from '../api.js';

// Today in UTC+8, the API's default period, for the date picker's value.
export function todayUTC8() {
  return new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
}

export function periodParam(ctx) {
  const p = ctx.params.get('period');
  return p && /^\d{4}-\d{2}-\d{2}$/.test(p) ? p : null;
}

export function withPeriod(path, ctx, extra = {}) {
  const q = new URLSearchParams();
  const p = periodParam(ctx);
  if (p) q.set('period', p);
  for (const [k, v] of Object.entries(extra)) if (v != null) q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

export async function loadUnit(code) { return get(unitPath(code)); }

export function crumbs(unit, page, ctx) {
  const path = unit.path && unit.path.length ? unit.path : [unit];
  return h('nav', { 'aria-label': 'breadcrumb' }, h('ol', { class: 'crumbs', id: 'crumbs' },
    path.map((u, i) => h('li', null, i === path.length - 1 ? h('span', { 'aria-current': 'location' }, u.name)
      : h('a', { href: withPeriod(`/unit/${u.code}/${page}`, ctx) }, u.name)))));
}

// Title row: unit name, code, page name, and a date input that reloads the
// page for another day.
export function titleRow(unit, pageLabel, ctx, period) {
  const input = h('input', { type: 'date', id: 'period', value: period || todayUTC8(), 'aria-label': t('period') });
  input.addEventListener('change', () => {
    if (!input.value) return;
    const q = new URLSearchParams(location.search);
    q.set('period', input.value);
    ctx.navigate(`${location.pathname}?${q}`);
  });
  document.title = `${unit.name} · ${pageLabel} · Rollcall`;
  return [crumbs(unit, ctx.page === 'villages' ? 'today' : ctx.page, ctx),
    h('div', { class: 'controls' },
      h('h1', { id: 'page-title' }, `${unit.name} `, h('span', { class: 'muted' }, unit.code), ` · ${pageLabel}`),
      h('label', null, `${t('period')} `, input))];
}

export function statusWord(s) {
  return h('span', { class: `st ${s}` }, t('s_' + s));
}

export function emptyRow(text) { return h('p', { class: 'muted', id: 'empty' }, text || t('none')); }
