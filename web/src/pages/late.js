// Late: villages whose first report of the day came after the deadline, by
// how many minutes, and when it came.
import { h, clear, sortableTable } from '../dom.js';
import { t, fmtTime } from '../i18n.js';
import { get, unitPath } from '../api.js';
import { titleRow, periodParam, withPeriod, emptyRow } from './common.js';

export async function render(ctx) {
  const period = periodParam(ctx);
  const [unit, list] = await Promise.all([get(unitPath(ctx.code)), get(unitPath(ctx.code, 'late', { period }))]);
  if (!ctx.current()) return;
  const main = clear(ctx.main);
  main.append(...titleRow(unit, t('late'), ctx, period));
  main.append(h('div', { class: 'controls' },
    h('strong', { id: 'count' }, `${t('late_n')}: ${list.rows.length}`),
    h('a', { href: unitPath(ctx.code, 'late', { period, format: 'csv' }), download: '', id: 'csv' }, t('csv'))));
  main.append(list.rows.length ? sortableTable([
    { key: 'name', label: t('village'), render: r => h('a', { href: withPeriod(`/unit/${r.code}/today`, ctx) }, r.name) },
    { key: 'code', label: t('code'), cls: 'hide-narrow' },
    { key: 'township_name', label: t('township'), render: r => h('a', { href: withPeriod(`/unit/${r.township_code}/today`, ctx) }, r.township_name) },
    { key: 'minutes_late', label: t('minutes_late'), num: true },
    { key: 'first_received_at', label: t('first_received'), render: r => fmtTime(r.first_received_at) },
  ], list.rows, { id: 'late-table', sortKey: 'minutes_late', dir: -1, rowData: r => ({ code: r.code }) }) : emptyRow());
}
