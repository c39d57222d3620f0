// Non-reporters: every village of the subtree without a report for the day,
// whether and when it was reminded, and how many days in a row it has
// missed; the same list as CSV through a plain link (?format=csv).
import { h, clear, sortableTable } from '../dom.js';
import { t, fmtTime } from '../i18n.js';
import { get, unitPath } from '../api.js';
import { titleRow, periodParam, withPeriod, emptyRow } from './common.js';

export async function render(ctx) {
  const period = periodParam(ctx);
  const [unit, list] = await Promise.all([get(unitPath(ctx.code)), get(unitPath(ctx.code, 'missing', { period }))]);
  if (!ctx.current()) return;
  const main = clear(ctx.main);
  main.append(...titleRow(unit, t('missing'), ctx, period));
  const csv = unitPath(ctx.code, 'missing', { period, format: 'csv' });
  main.append(h('div', { class: 'controls' },
    h('strong', { id: 'count' }, `${t('missing_n')}: ${list.rows.length}`),
    h('a', { href: csv, download: '', id: 'csv' }, t('csv'))));
  main.append(list.rows.length ? sortableTable([
    { key: 'name', label: t('village'), render: r => h('a', { href: withPeriod(`/unit/${r.code}/today`, ctx) }, r.name) },
    { key: 'code', label: t('code') },
    { key: 'township_name', label: t('township'), render: r => h('a', { href: withPeriod(`/unit/${r.township_code}/today`, ctx) }, r.township_name) },
    { key: 'reminders', label: t('reminders'), num: true },
    { key: 'last_reminded_at', label: t('last_reminded'), render: r => fmtTime(r.last_reminded_at) },
    { key: 'days_missed', label: t('days_missed'), num: true },
  ], list.rows, { id: 'missing-table', sortKey: 'code', rowData: r => ({ code: r.code }) }) : emptyRow());
}
