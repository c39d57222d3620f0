// Urgent incidents with the time of each hop (village -> township -> county
// -> province) as a small timeline, and how long each hop took.
import { h, clear, sortableTable } from '../dom.js';
import { t, fmtTime, fmtDuration } from '../i18n.js';
import { get, unitPath } from '../api.js';
import { titleRow, periodParam, withPeriod, emptyRow } from './common.js';

const HOPS = [['village_at', 'hop_village'], ['township_at', 'hop_township'], ['county_at', 'hop_county'], ['province_at', 'hop_province']];

function ms(a, b) {
  if (!a || !b) return null;
  return new Date(b) - new Date(a);
}

function fmtMs(v) {
  if (v == null) return '—';
  if (v < 1000) return `${v} ms`;
  return v < 60000 ? `${(v / 1000).toFixed(1)} s` : fmtDuration(v / 1000);
}

// The last hop recorded so far: a report still on its way up has no
// province time yet, and its total is up to where it has got.
function lastHop(r) {
  for (let i = HOPS.length - 1; i > 0; i--) if (r[HOPS[i][0]]) return HOPS[i];
  return null;
}

// Segment widths grow with the logarithm of the hop's time, so a 3 ms and a
// 3 s hop both stay visible and tell apart.
function timeline(r) {
  const parts = [];
  HOPS.forEach(([k, label], i) => {
    if (i > 0) {
      const d = ms(r[HOPS[i - 1][0]], r[k]);
      parts.push(h('span', { class: 'seg', style: { width: `${24 + (d == null ? 0 : Math.min(60, 8 * Math.log10(1 + d)))}px` }, title: fmtMs(d) }));
    }
    parts.push(h('span', { class: 'hop' },
      h('span', { class: `dot${r[k] ? '' : ' none'}` }),
      h('span', null, t(label)),
      h('span', { class: 'ms' }, i === 0 ? fmtTime(r[k]).slice(-8) : `+${fmtMs(ms(r[HOPS[i - 1][0]], r[k]))}`)));
  });
  return h('div', { class: 'timeline', role: 'img',
    'aria-label': HOPS.map(([k, l]) => `${t(l)} ${fmtTime(r[k])}`).join(', ') }, parts);
}

export async function render(ctx) {
  const period = periodParam(ctx);
  const [unit, list] = await Promise.all([get(unitPath(ctx.code)), get(unitPath(ctx.code, 'urgent', { days: 7, period }))]);
  if (!ctx.current()) return;
  const main = clear(ctx.main);
  main.append(...titleRow(unit, t('urgent'), ctx, period));
  main.append(h('p', { class: 'muted' }, `${t('days7')} · ${t('incident')}: `, h('strong', { id: 'count' }, String(list.rows.length))));
  main.append(list.rows.length ? sortableTable([
    { key: 'occurred_at', label: t('occurred_at'), render: r => fmtTime(r.occurred_at) },
    { key: 'unit_name', label: t('unit'), render: r => h('a', { href: withPeriod(`/unit/${r.unit_code}/today`, ctx) }, r.unit_name) },
    { key: 'incident_type', label: t('incident') },
    { key: 'severity', label: t('severity'), num: true },
    { key: 'hops', label: t('hops'), sortable: false, render: timeline },
    { key: 'total', label: `${t('hop_village')}→${t('hop_province')}`, num: true,
      sort: r => { const l = lastHop(r); return l ? ms(r.village_at, r[l[0]]) : null; },
      render: r => { const l = lastHop(r); return l ? `${fmtMs(ms(r.village_at, r[l[0]]))}${l[0] === 'province_at' ? '' : ` (→${t(l[1])})`}` : '—'; } },
  ], list.rows, { id: 'urgent-table' }) : emptyRow());
}
