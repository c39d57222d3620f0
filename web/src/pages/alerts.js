// Alerts: escalations and concealment signals raised for the subtree, newest
// first, with the rule that fired, the indicator, its value and threshold.
import { h, clear, sortableTable } from '../dom.js';
import { t, fmtTime, indicatorLabel } from '../i18n.js';
import { get, unitPath } from '../api.js';
import { titleRow, periodParam, withPeriod, emptyRow } from './common.js';

export async function render(ctx) {
  const period = periodParam(ctx);
  const [unit, list] = await Promise.all([get(unitPath(ctx.code)), get(unitPath(ctx.code, 'alerts', { days: 30, period }))]);
  if (!ctx.current()) return;
  const main = clear(ctx.main);
  main.append(...titleRow(unit, t('alerts'), ctx, period));
  main.append(h('p', { class: 'muted' }, `${t('days30')} · ${t('alerts')}: `, h('strong', { id: 'count' }, String(list.rows.length))));
  main.append(list.rows.length ? sortableTable([
    { key: 'raised_at', label: t('raised_at'), render: r => fmtTime(r.raised_at) },
    { key: 'unit_name', label: t('unit'), render: r => h('a', { href: withPeriod(`/unit/${r.unit_code}/today`, { params: new URLSearchParams({ period: r.period }) }) }, r.unit_name) },
    { key: 'period', label: t('period') },
    { key: 'rule', label: t('rule') },
    { key: 'indicator', label: t('indicator'), render: r => r.indicator ? indicatorLabel(r.indicator) : '—' },
    { key: 'value', label: t('value'), num: true },
    { key: 'threshold', label: t('threshold'), num: true },
  ], list.rows, { id: 'alerts-table' }) : emptyRow());
}
