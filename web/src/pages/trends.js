// Trends: 30 days of completeness (shares of villages reported, zero, late,
// missing) for the unit, the chosen indicator beside it, small multiples per
// child, and a calendar strip of every village's days that shows a run of
// zero reports or of copied numbers at a glance.
import { h, clear } from '../dom.js';
import { t, indicatorLabel } from '../i18n.js';
import { get, unitPath, ApiError, NotFound } from '../api.js';
import { titleRow, periodParam, withPeriod, emptyRow } from './common.js';
import { lineChart, calendarStrip, drawn, resetPlots, dayToUnix, COLORS } from '../charts.js';

const STATUSES = ['reported', 'zero', 'late', 'missing'];

function share(s, key) {
  return s[key].map((v, i) => (v == null || !s.expected[i] ? null : Math.round((1000 * v) / s.expected[i]) / 10));
}

export async function render(ctx) {
  const period = periodParam(ctx);
  const indicator = ctx.params.get('indicator') || 'confirmed';
  // The calendar is asked for at once, beside the rest; only townships and
  // counties have one (the API refuses more than 5,000 villages).
  const calendar = ctx.code.length === 12 ? Promise.resolve({ e: new NotFound('a village has no calendar') })
    : get(unitPath(ctx.code, 'calendar', { days: 30, period })).then(c => ({ c }), e => ({ e }));
  const [unit, day, tr] = await Promise.all([
    get(unitPath(ctx.code)),
    get(unitPath(ctx.code, 'day', { period })),
    get(unitPath(ctx.code, 'trends', { days: 30, period, indicator })),
  ]);
  if (!ctx.current()) return;
  resetPlots();
  ctx.onCleanup(resetPlots);
  const main = clear(ctx.main);
  main.append(...titleRow(unit, t('trends'), ctx, period || day.period));

  const names = Object.keys((day.totals && day.totals.indicators) || {});
  if (!names.includes(indicator)) names.unshift(indicator);
  const picker = h('select', { id: 'indicator', 'aria-label': t('indicator') },
    names.map(n => h('option', { value: n, selected: n === indicator }, indicatorLabel(n))));
  picker.addEventListener('change', () => ctx.navigate(withPeriod(`/unit/${ctx.code}/trends`, ctx, { indicator: picker.value })));
  main.append(h('div', { class: 'controls' }, h('label', null, `${t('indicator')} `, picker),
    h('span', { class: 'muted' }, t('days30'))));

  const x = tr.days.map(dayToUnix);
  const [self, ...kids] = tr.series;
  const completeness = h('div', { id: 'plot-completeness' });
  const ind = h('div', { id: 'plot-indicator' });
  main.append(h('div', { class: 'charts two' },
    h('section', { class: 'card chart-card' }, h('h3', null, `${self.name} · ${t('completeness')}`), completeness),
    h('section', { class: 'card chart-card' }, h('h3', null, `${self.name} · ${indicatorLabel(indicator)}`), ind)));
  const multiples = h('div', { class: 'charts', id: 'multiples' });
  const key = (label, color) => h('span', { class: 'legend-key' }, h('i', { style: { background: color } }), label);
  main.append(h('h2', null, t('children')), kids.length ? h('div', { class: 'muted' },
    key(`${t('reported')} %`, COLORS.reported), key(`${t('missing_n')} %`, COLORS.missing),
    key(`${indicatorLabel(indicator)} (→)`, COLORS.indicator)) : null, kids.length ? multiples : emptyRow());

  // Plot after the containers are in the page, so they know their width.
  lineChart(completeness, { x, percent: true, height: 220,
    series: STATUSES.map(s => ({ label: t(s === 'reported' ? 'reported' : s === 'zero' ? 'zero' : s + '_n'), values: share(self, s), color: COLORS[s] })) });
  lineChart(ind, { x, height: 220, series: [{ label: indicatorLabel(indicator), values: self.indicator, color: COLORS.indicator }] });
  for (const k of kids) {
    const el = h('div', { id: `plot-${k.code}` });
    multiples.append(h('section', { class: 'card chart-card' },
      h('h3', null, h('a', { href: withPeriod(`/unit/${k.code}/trends`, ctx, { indicator }) }, k.name)), el));
    lineChart(el, { x, percent: true, height: 150, legend: false,
      series: [{ label: t('reported'), values: share(k, 'reported'), color: COLORS.reported },
        { label: t('missing_n'), values: share(k, 'missing'), color: COLORS.missing },
        { label: indicatorLabel(indicator), values: k.indicator, color: COLORS.indicator, scale: 'ind' }] });
  }

  main.append(h('h2', null, t('calendar')));
  const calEl = h('div', { id: 'calendar', class: 'card' });
  main.append(calEl);
  {
    try {
      const got = await calendar;
      if (got.e) throw got.e;
      const cal = got.c;
      if (!ctx.current()) return;
      const chart = calendarStrip(calEl, { days: cal.days, rows: cal.villages,
        labels: { reported: t('reported'), zero: t('zero'), late: t('late_n'), missing: t('missing_n'), copied: t('copied') } });
      const onResize = () => chart.resize();
      window.addEventListener('resize', onResize);
      ctx.onCleanup(() => { window.removeEventListener('resize', onResize); chart.dispose(); });
      await drawn(chart);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 400) && !(e instanceof NotFound)) throw e;
      calEl.replaceWith(emptyRow(t('calendar_too_big')));
    }
  }
}
