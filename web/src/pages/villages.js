// Villages by status for one day: the list behind the expected / reported /
// zero counters.  It is the one-day calendar of the subtree (the API's
// calendar gives each village's status per day), so it exists for counties
// and townships; a province is told to choose one.
import { h, clear, sortableTable } from '../dom.js';
import { t, statusLabel } from '../i18n.js';
import { get, unitPath, ApiError } from '../api.js';
import { titleRow, periodParam, withPeriod, statusWord, emptyRow } from './common.js';

const MATCH = {
  all: () => true,
  reported: s => s !== 'missing',
  zero: s => s === 'zero',
  late: s => s === 'late',
  missing: s => s === 'missing',
};

export async function render(ctx) {
  const period = periodParam(ctx);
  const status = MATCH[ctx.params.get('status')] ? ctx.params.get('status') : 'all';
  const unit = await get(unitPath(ctx.code));
  let cal = null, err = null;
  try { cal = await get(unitPath(ctx.code, 'calendar', { days: 1, period })); } catch (e) {
    if (!(e instanceof ApiError && e.status === 400)) throw e;
    err = e;
  }
  if (!ctx.current()) return;
  const main = clear(ctx.main);
  main.append(...titleRow(unit, t('villages'), ctx, period || (cal && cal.days[0])));
  main.append(h('div', { class: 'filters', role: 'group', 'aria-label': t('status') },
    Object.keys(MATCH).map(s => h('a', { href: withPeriod(`/unit/${ctx.code}/villages`, ctx, { status: s }),
      'aria-current': s === status ? 'true' : null }, s === 'all' ? t('all') : statusLabel(s)))));
  if (err) { main.append(emptyRow(t('calendar_too_big'))); return; }
  const rows = cal.villages.map(v => ({ ...v, status: v.days[v.days.length - 1] })).filter(v => MATCH[status](v.status));
  main.append(h('p', null, h('strong', { id: 'count' }, `${status === 'all' ? t('all') : statusLabel(status)}: ${rows.length}`)));
  main.append(rows.length ? sortableTable([
    { key: 'name', label: t('village'), render: r => h('a', { href: withPeriod(`/unit/${r.code}/today`, ctx) }, r.name) },
    { key: 'code', label: t('code') },
    { key: 'township_code', label: t('township'), render: r => h('a', { href: withPeriod(`/unit/${r.township_code}/today`, ctx) }, r.township_code) },
    { key: 'status', label: t('status'), render: r => statusWord(r.status) },
  ], rows, { id: 'villages-table', sortKey: 'code', rowData: r => ({ code: r.code, status: r.status }) }) : emptyRow());
}
