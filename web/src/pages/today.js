// Today: what a county official needs at 9:40 — the deadline countdown, the
// five counters over villages and over direct children (each a link to its
// list), one row per child with its coverage bar, the "as of" time and the
// pipeline lag, the filed state with the Sign button, and what waits for
// sign-off.  It follows /api/stream and redraws in place on every change of
// the unit's or a child's aggregate, without a reload.
//
// A village's Today is its own page: the day's report and its revision
// history (the bottom of the drill-down).
import { h, clear, sortableTable } from '../dom.js';
import { t, fmtTime, fmtDuration, indicatorLabel, statusLabel } from '../i18n.js';
import { get, post, unitPath, NotFound } from '../api.js';
import { titleRow, periodParam, withPeriod, statusWord, emptyRow } from './common.js';

const VILLAGE_COUNTERS = [
  ['villages_expected', 'expected', 'villages', 'all'],
  ['villages_reported', 'reported', 'villages', 'reported'],
  ['villages_zero', 'zero', 'villages', 'zero'],
  ['villages_late', 'late_n', 'late', null],
  ['villages_missing', 'missing_n', 'missing', null],
];
const CHILD_COUNTERS = [
  ['expected_children', 'expected', 'all'],
  ['reported_children', 'reported', 'reported'],
  ['zero_children', 'zero', 'zero'],
  ['late_children', 'late_n', 'late'],
  ['missing_children_count', 'missing_n', 'missing'],
];
// A child's live state, from its village coverage, as the live aggregate
// counts it (PIPELINE.md): reported once every village beneath it has,
// zero when all of them reported zero, late when any was late.  The API's
// child status is that of the child's filed report, which can lag the live
// counters; the filters follow the counters so that a count and its list agree.
const complete = c => (c.villages_expected || 0) > 0 && (c.villages_reported || 0) >= c.villages_expected;
const CHILD_FILTERS = {
  all: () => true,
  reported: c => complete(c),
  zero: c => complete(c) && (c.villages_zero || 0) >= c.villages_expected,
  late: c => complete(c) && (c.villages_late || 0) > 0,
  missing: c => !complete(c),
};
function liveStatus(c) {
  if (!complete(c)) return 'missing';
  if (CHILD_FILTERS.late(c)) return 'late';
  if (CHILD_FILTERS.zero(c)) return 'zero';
  return 'reported';
}

export async function render(ctx) {
  const period = periodParam(ctx);
  const [unit, day] = await Promise.all([get(unitPath(ctx.code)), get(unitPath(ctx.code, 'day', { period }))]);
  if (!ctx.current()) return;
  const main = clear(ctx.main);
  main.append(...titleRow(unit, t('today'), ctx, day.period));
  if (unit.level === 'village') return renderVillage(ctx, main, unit, day);

  const live = h('span', { class: 'live', id: 'live' }, t('offline'));
  const top = h('div', { class: 'card row', id: 'headline' });
  const counters = h('section', { class: 'card', id: 'counters', 'aria-label': t('coverage') });
  const signoffs = h('section', { id: 'signoffs' });
  const filter = ctx.params.get('status') && CHILD_FILTERS[ctx.params.get('status')] ? ctx.params.get('status') : 'all';
  const children = h('section', { id: 'children' });
  const indicators = h('section', { id: 'indicators' });
  main.append(top, counters, signoffs, children, indicators);

  let current = day;
  let sort = { key: null, dir: 1 };
  let countdownTimer = null;

  function drawHeadline(d) {
    clear(top);
    const cd = h('span', { class: 'countdown', id: 'countdown' });
    const tick = () => {
      if (!d.deadline) { cd.textContent = t('no_deadline'); return; }
      const s = (new Date(d.deadline) - Date.now()) / 1000;
      cd.classList.toggle('passed', s < 0);
      cd.textContent = s >= 0 ? `${t('deadline_in')} ${fmtDuration(s)}` : `${t('deadline_passed')} ${fmtDuration(-s)}`;
    };
    tick();
    clearInterval(countdownTimer);
    countdownTimer = setInterval(tick, 1000);
    top.append(
      h('div', null, cd, h('div', { class: 'muted' }, `${t('deadline')} ${fmtTime(d.deadline)}`)),
      h('div', null, h('div', null, `${t('as_of')} `, h('strong', { id: 'as-of' }, fmtTime(d.as_of))),
        h('div', { class: 'muted' }, `${t('lag')} `, h('span', { id: 'lag' }, d.lag_seconds == null ? '—' : fmtDuration(d.lag_seconds)))),
      filingBlock(d),
      live);
  }

  function filingBlock(d) {
    const f = d.filing;
    const box = h('div', { id: 'filing', dataset: { status: f ? f.status : 'none' } });
    if (!f) { box.append(h('span', { class: 'badge' }, t('no_filing'))); return box; }
    box.append(h('div', null, `${t('filed_state')} `,
      h('span', { class: `badge ${f.status}`, id: 'filing-status' }, t('st_' + f.status)),
      f.revised ? h('span', { class: 'badge revised' }, ' ', t('st_revised')) : null));
    const by = f.signoff_by || f.filed_by;
    if (f.status === 'filed' || f.filed_at) {
      box.append(h('div', { class: 'muted', id: 'filed-by' },
        `${t('filed_at')} ${fmtTime(f.filed_at)}`, by ? ` · ${t('filed_by')} ${by}` : ''));
    }
    if (d.can_sign) {
      const btn = h('button', { type: 'button', class: 'primary', id: 'sign' }, t('sign'));
      btn.addEventListener('click', async () => {
        btn.disabled = true; btn.textContent = t('signing');
        try {
          const r = await post(unitPath(ctx.code, 'signoff', { period: current.period }));
          current = { ...current, filing: r.filing, can_sign: false };
          drawHeadline(current);
          followFiling();
        } catch (e) {
          btn.disabled = false; btn.textContent = t('sign');
          box.append(h('div', { class: 'error', role: 'alert' }, `${t('sign_failed')}: ${e.message}`));
        }
      });
      box.append(btn);
    }
    return box;
  }

  function counter(key, label, href, value) {
    return h('a', { class: `counter ${label.replace('_n', '')}`, href, dataset: { counter: key } },
      h('span', { class: 'n' }, value == null ? '—' : String(value)), h('span', { class: 'k' }, t(label)));
  }

  function drawCounters(d, flashFrom) {
    const tot = d.totals || {};
    clear(counters).append(h('div', { class: 'counters' },
      h('div', { class: 'label' }, t('over_villages')),
      VILLAGE_COUNTERS.map(([k, l, page, st]) =>
        counter(k, l, withPeriod(`/unit/${ctx.code}/${page}`, ctx, st ? { status: st } : {}), tot[k])),
      h('div', { class: 'label' }, t('over_children')),
      CHILD_COUNTERS.map(([k, l, st]) =>
        counter(k, l, withPeriod(`/unit/${ctx.code}/today`, ctx, { status: st }) + '#children', tot[k]))));
    counters.dataset.version = tot.version == null ? '' : String(tot.version);
    if (flashFrom) {
      for (const a of counters.querySelectorAll('[data-counter]')) {
        const k = a.dataset.counter;
        if ((flashFrom.totals || {})[k] !== tot[k]) a.classList.add('flash');
      }
    }
  }

  function drawSignoffs(rows) {
    clear(signoffs);
    if (!rows || !rows.length) return;
    signoffs.append(h('h2', null, t('pending_signoffs')), sortableTable([
      { key: 'unit_name', label: t('unit'), render: r => h('a', { href: withPeriod(`/unit/${r.unit_code}/today`, { params: new URLSearchParams({ period: r.period }) }) }, r.unit_name) },
      { key: 'period', label: t('period') },
      { key: 'reported_children', label: t('reported'), num: true, render: r => `${r.reported_children}/${r.expected_children}` },
      { key: 'missing_count', label: t('missing_n'), num: true },
      { key: 'deadline', label: t('deadline'), render: r => fmtTime(r.deadline) },
    ], rows, { id: 'signoff-table' }));
  }

  function bar(c) {
    const e = c.villages_expected || 0;
    if (!e) return h('span', { class: 'bar' });
    const zero = c.villages_zero || 0, late = c.villages_late || 0;
    const rep = Math.max(0, (c.villages_reported || 0) - zero - late);
    const miss = Math.max(0, e - (c.villages_reported || 0));
    const seg = (cls, n) => n > 0 ? h('span', { class: cls, style: { width: `${(100 * n) / e}%` } }) : null;
    return h('span', { class: 'bar', role: 'img',
      'aria-label': `${t('reported')} ${c.villages_reported}/${e}, ${t('zero')} ${zero}, ${t('late_n')} ${late}, ${t('missing_n')} ${miss}` },
      seg('reported', rep), seg('zero', zero), seg('late', late), seg('missing', miss));
  }

  function drawChildren(d) {
    clear(children);
    const rows = (d.children || []).filter(CHILD_FILTERS[filter]);
    children.append(h('h2', null, `${t('children')} (${rows.length}/${(d.children || []).length})`),
      h('div', { class: 'filters', role: 'group', 'aria-label': t('status') },
        Object.keys(CHILD_FILTERS).map(f => h('a', {
          href: withPeriod(`/unit/${ctx.code}/today`, ctx, { status: f }) + '#children',
          'aria-current': f === filter ? 'true' : null }, f === 'all' ? t('all') : statusLabel(f)))));
    if (!rows.length) { children.append(emptyRow()); return; }
    children.append(sortableTable([
      { key: 'name', label: t('name'), render: c => h('a', { href: withPeriod(`/unit/${c.code}/today`, ctx), dataset: { unit: c.code } }, c.name) },
      { key: 'code', label: t('code'), cls: 'hide-narrow' },
      { key: 'status', label: t('status'), sort: liveStatus, render: c => statusWord(liveStatus(c)) },
      { key: 'coverage', label: t('coverage'), sort: c => (c.villages_reported || 0) / (c.villages_expected || 1),
        render: c => h('span', { class: 'row' }, bar(c),
          h('a', { href: withPeriod(`/unit/${c.code}/villages`, ctx, { status: 'reported' }) }, `${c.villages_reported ?? 0}/${c.villages_expected ?? 0}`)) },
      { key: 'minutes_late', label: t('minutes_late'), num: true },
      { key: 'first_received_at', label: t('first_received'), cls: 'hide-narrow', render: c => fmtTime(c.first_received_at) },
      { key: 'filed', label: t('filed'), render: c => c.filed == null ? '—'
        : c.filed ? [t('yes'), c.status === 'late' ? h('span', { class: 'st late' }, ` (${t('s_late')})`) : null] : t('no') },
    ], rows, { id: 'children-table', sortKey: sort.key, dir: sort.dir, onSort: (k, dir) => { sort = { key: k, dir }; },
      rowData: c => ({ code: c.code, status: liveStatus(c) }) }));
  }

  function drawIndicators(d) {
    clear(indicators);
    const ind = (d.totals && d.totals.indicators) || {};
    const names = Object.keys(ind);
    if (!names.length) return;
    indicators.append(h('details', { class: 'card' }, h('summary', null, t('indicators')),
      h('div', { class: 'table-wrap' }, h('table', { id: 'indicator-table' }, h('tbody', null,
        names.map(n => h('tr', null, h('td', null, indicatorLabel(n)),
          h('td', { class: 'num', dataset: { indicator: n } }, ind[n] == null ? '—' : String(ind[n])))))))));
  }

  drawHeadline(day);
  drawCounters(day);
  drawChildren(day);
  drawIndicators(day);
  get(unitPath(ctx.code, 'signoffs')).then(r => { if (ctx.current()) drawSignoffs(r.rows); }, () => {});

  // Live updates: one refetch per burst of events (the rollup flushes in
  // batches, and a parent and its children may all change at once).
  let pending = null, inflight = false, again = false;
  async function refresh() {
    if (inflight) { again = true; return; }
    inflight = true;
    try {
      const d = await get(unitPath(ctx.code, 'day', { period }));
      if (!ctx.current()) return;
      const before = current;
      current = d;
      drawHeadline(d); drawCounters(d, before); drawChildren(d); drawIndicators(d);
      get(unitPath(ctx.code, 'signoffs')).then(r => { if (ctx.current()) drawSignoffs(r.rows); }, () => {});
      live.classList.add('on'); live.textContent = t('live');
    } catch (e) {
      if (e instanceof NotFound) return;
    } finally {
      inflight = false;
      if (again) { again = false; refresh(); }
    }
  }
  // A signature is filed by the level's desk a moment later, and a filing
  // is not an aggregate change the stream reports: ask until it is filed.
  let followTimer = null;
  function followFiling(tries = 60) {
    clearTimeout(followTimer);
    followTimer = setTimeout(async () => {
      await refresh();
      const st = current.filing && current.filing.status;
      if (ctx.current() && tries > 1 && (st === 'filing' || st === 'awaiting_signoff' || st === 'collecting')) followFiling(tries - 1);
    }, 1000);
  }
  const es = new EventSource(`/api/stream?unit=${encodeURIComponent(ctx.code)}`);
  es.addEventListener('open', () => { live.classList.add('on'); live.textContent = t('live'); });
  es.addEventListener('error', () => { live.classList.remove('on'); live.textContent = t('offline'); });
  es.addEventListener('aggregate', ev => {
    let msg = null;
    try { msg = JSON.parse(ev.data); } catch { return; }
    if (msg.period && msg.period !== current.period) return;
    clearTimeout(pending);
    pending = setTimeout(refresh, 150);
  });
  ctx.onCleanup(() => { es.close(); clearTimeout(pending); clearTimeout(followTimer); clearInterval(countdownTimer); });
  window.__rcStream = es;
}

async function renderVillage(ctx, main, unit, day) {
  const tot = day.totals;
  const reported = tot && (tot.villages_reported == null ? tot.version != null : tot.villages_reported > 0);
  const status = !reported ? 'missing' : tot.villages_late ? 'late' : tot.villages_zero ? 'zero' : 'reported';
  main.append(h('section', { class: 'card row', id: 'village-day' },
    h('div', null, `${t('status')} `, statusWord(status)),
    h('div', null, `${t('deadline')} ${fmtTime(day.deadline)}`),
    h('div', null, `${t('as_of')} ${fmtTime(day.as_of)}`),
    tot && tot.version != null ? h('div', { class: 'muted' }, `${t('version')} ${tot.version}`) : null));
  const ind = (tot && tot.indicators) || {};
  const names = Object.keys(ind);
  const rows = names.map(n => h('tr', null, h('td', null, indicatorLabel(n)),
    h('td', { class: 'num', dataset: { indicator: n } }, ind[n] == null ? '—' : String(ind[n]))));
  main.append(h('h2', null, t('report')), names.length
    ? h('div', { class: 'table-wrap' }, h('table', { id: 'indicator-table' }, h('tbody', null, rows)))
    : emptyRow(t('no_report')));
  const hist = await get(unitPath(ctx.code, 'history', { days: 90 }));
  if (!ctx.current()) return;
  const shown = names.length ? names : Object.keys((hist.rows[0] && hist.rows[0].indicators) || {});
  const key = shown.filter(n => ['confirmed', 'suspected', 'home_observation', 'persons_screened'].includes(n));
  main.append(h('h2', null, t('history')), hist.rows.length ? sortableTable([
    { key: 'received_at', label: t('received_at'), render: r => fmtTime(r.received_at) },
    { key: 'version', label: t('version'), num: true },
    { key: 'kind', label: t('kind') },
    { key: 'late', label: t('late_n'), render: r => r.late ? t('yes') : t('no') },
    ...key.map(n => ({ key: n, label: indicatorLabel(n), num: true, sort: r => (r.indicators || {})[n], render: r => String((r.indicators || {})[n] ?? '—') })),
  ], hist.rows, { id: 'history-table' }) : emptyRow());
}
