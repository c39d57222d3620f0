// Browser tests of the dashboard pages: headless Debian chromium driven by
// playwright-core (pinned in web/package-lock.json), against the real
// rollcall-dashboard of the running stack, with the days tests/browser/run.sh
// has loaded.  Every figure on a page is checked against PostgreSQL (psql as
// the tables' owner), never against what the test itself sent.
//
// Environment (run.sh sets it): ROLLCALL_DASHBOARD, ROLLCALL_PG_DSN,
// ROLLCALL_HTTP, ROLLCALL_BUILD, RC_TODAY, RC_SIGN_PERIOD, RC_COUNTY,
// RC_OTHER_COUNTY, RC_USER / RC_PASSWORD (signer of RC_COUNTY),
// RC_OTHER_USER / RC_OTHER_PASSWORD (viewer of RC_OTHER_COUNTY), RC_SHOTS.
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(new URL('../../web/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const env = name => {
  const v = process.env[name];
  if (!v) { console.error(`dashboard.test: ${name} is not set (run tests/browser/run.sh)`); process.exit(2); }
  return v;
};
const BASE = env('ROLLCALL_DASHBOARD').replace(/\/$/, '');
const DSN = env('ROLLCALL_PG_DSN');
const COUNTY = env('RC_COUNTY');
const OTHER = env('RC_OTHER_COUNTY');
const TODAY = env('RC_TODAY');
const SIGN_PERIOD = env('RC_SIGN_PERIOD');
const SHOTS = env('RC_SHOTS');
const BUILD = process.env.ROLLCALL_BUILD || 'build';
fs.mkdirSync(SHOTS, { recursive: true });

const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run',
  '--disable-component-update', '--disable-sync', '--lang=zh-CN'];

let passed = 0, failed = 0;
function check(name, ok, detail) {
  if (ok) { passed++; console.log(`ok   ${name}`); }
  else { failed++; console.log(`FAIL ${name}${detail ? ': ' + detail : ''}`); }
  return ok;
}
async function step(name, fn) {
  try { await fn(); } catch (e) { check(name, false, e.stack || String(e)); }
}

function psql(sql) {
  const out = execFileSync('psql', ['-qAtX', '-v', 'ON_ERROR_STOP=1', '-F', '|', DSN, '-c', sql], { encoding: 'utf8' });
  return out.split('\n').filter(l => l.length).map(l => l.split('|'));
}

async function browserContext() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rc-chromium-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: '/usr/bin/chromium', headless: true, args: ARGS,
    viewport: { width: 1366, height: 768 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai',
  });
  // Chromium may still be writing its profile as it exits: retry, and never
  // let a leftover temporary directory fail the tests.
  ctx.on('close', () => {
    try { fs.rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 }); } catch { /* left in /tmp */ }
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('pageerror', e => console.log(`pageerror: ${e.message}`));
  return { ctx, page };
}

async function ready(page, timeout = 60000) {
  await page.waitForSelector('body[data-state=ready], body[data-state=notfound], body[data-state=error]', { timeout });
  return page.evaluate(() => document.body.dataset.state);
}

async function shot(page, name, fullPage = true) {
  // A generous bound: on a loaded machine chromium takes long to paint a
  // full page with its CJK font, and a slow screenshot is not a fault.
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage, timeout: 120000 });
}

async function login(page, user, password) {
  await page.goto(`${BASE}/login`);
  await page.waitForSelector('#login-form');
  await page.fill('#user', user);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL(/\/unit\/\d+\/today/), page.click('#login-form button[type=submit]')]);
  return ready(page);
}

async function counters(page) {
  return page.$$eval('[data-counter]', els => Object.fromEntries(els.map(e => [e.dataset.counter, e.querySelector('.n').textContent.trim()])));
}

const { ctx, page } = await browserContext();
let other = null;
try {
  // A wrong password first: the page says so and stays on the form.
  await step('wrong password is refused on the page', async () => {
    await page.goto(`${BASE}/login`);
    await page.fill('#user', env('RC_USER'));
    await page.fill('#password', 'not the password');
    await page.click('#login-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#login-error').textContent.length > 0);
    check('wrong password is refused on the page', page.url().endsWith('/login'));
    await shot(page, 'login', false);
  });

  await step('county official logs in', async () => {
    const state = await login(page, env('RC_USER'), env('RC_PASSWORD'));
    check('county official logs in and lands on the county Today page',
      state === 'ready' && page.url().includes(`/unit/${COUNTY}/today`), `${state} ${page.url()}`);
  });

  let period = TODAY;
  await step('Today counters equal v_unit_day', async () => {
    period = await page.inputValue('#period');
    check('Today shows today (UTC+8) by default', period === TODAY, `page ${period}, expected ${TODAY}`);
    const sql = `SELECT villages_expected, villages_reported, villages_zero, villages_late,
                        villages_expected - villages_reported, expected_children, reported_children,
                        zero_children, late_children, coalesce(cardinality(missing_children), 0)
                   FROM rollcall.v_unit_day WHERE unit_code = '${COUNTY}' AND period = '${period}'`;
    const keys = ['villages_expected', 'villages_reported', 'villages_zero', 'villages_late', 'villages_missing',
      'expected_children', 'reported_children', 'zero_children', 'late_children', 'missing_children_count'];
    // The pipeline is at rest after run.sh's --wait; retry briefly in case
    // a late flush lands between the page's read and ours.
    let want, got;
    for (let i = 0; i < 10; i++) {
      const row = psql(sql)[0] || [];
      want = Object.fromEntries(keys.map((k, j) => [k, row[j]]));
      got = await counters(page);
      if (keys.every(k => got[k] === want[k])) break;
      await page.waitForTimeout(500);
    }
    check('Today counters equal v_unit_day (villages and direct children)',
      keys.every(k => got[k] === want[k]), `page ${JSON.stringify(got)} db ${JSON.stringify(want)}`);
    const rows = await page.$$eval('#children-table tbody tr', trs => trs.length);
    check('one row per direct child', String(rows) === want.expected_children, `${rows} rows`);
    check('the deadline countdown is shown', /\d/.test(await page.textContent('#countdown')));
    // Every children counter links to its list, and the list is that long.
    const lists = {};
    for (const k of ['expected_children', 'reported_children', 'zero_children', 'late_children', 'missing_children_count']) {
      await page.click(`[data-counter=${k}]`);
      await page.waitForURL(/status=/);
      await ready(page);
      lists[k] = String(await page.$$eval('#children-table tbody tr', trs => trs.length));
      await page.goBack();
      await ready(page);
    }
    for (const k of ['villages_expected', 'villages_reported', 'villages_zero']) {
      await page.click(`[data-counter=${k}]`);
      await page.waitForURL(/\/villages\?/);
      await ready(page);
      lists[k] = String(await page.$$eval('#villages-table tbody tr', trs => trs.length));
      if (k === 'villages_zero') await shot(page, 'villages-zero');
      await page.goBack();
      await ready(page);
    }
    check('each counter equals the length of its list',
      Object.entries(lists).every(([k, n]) => n === want[k]), `lists ${JSON.stringify(lists)} db ${JSON.stringify(want)}`);
    await shot(page, 'today');
  });

  await step('missing list equals v_missing', async () => {
    const want = psql(`SELECT unit_code FROM rollcall.v_missing WHERE period = '${period}'
                         AND unit_code LIKE '${COUNTY}%' AND length(unit_code) = 12 ORDER BY 1`).map(r => r[0]);
    await page.click('[data-counter=villages_missing]');
    await page.waitForURL(/\/missing/);
    await ready(page);
    const got = (await page.$$eval('#missing-table tbody tr', trs => trs.map(tr => tr.dataset.code))).sort();
    check('the missing counter links to the non-reporters list', page.url().includes(`/unit/${COUNTY}/missing`));
    check('missing list equals v_missing', want.length > 0 && JSON.stringify(got) === JSON.stringify(want),
      `page ${got.length} [${got.slice(0, 5)}] db ${want.length} [${want.slice(0, 5)}]`);
    const href = await page.getAttribute('#csv', 'href');
    const csv = await page.request.get(new URL(href, BASE).toString());
    const body = await csv.text();
    check('the CSV link downloads the same list', csv.status() === 200 && /text\/csv/.test(csv.headers()['content-type'] || '')
      && body.trim().split('\n').length === want.length + 1, `${csv.status()} ${csv.headers()['content-type']} ${body.slice(0, 80)}`);
    await shot(page, 'missing');
  });

  await step('late page', async () => {
    await page.goto(`${BASE}/unit/${COUNTY}/late`);
    check('late page draws', await ready(page) === 'ready');
    const rows = await page.$$eval('#late-table tbody tr', trs => trs.length).catch(() => 0);
    const want = psql(`SELECT villages_late FROM rollcall.v_unit_day WHERE unit_code = '${COUNTY}' AND period = '${period}'`)[0][0];
    check('late list has one row per late village', String(rows) === want, `${rows} rows, v_unit_day ${want}`);
    await shot(page, 'late');
  });

  await step('drill-down: township shows its villages', async () => {
    await page.goto(`${BASE}/unit/${COUNTY}/today`);
    await ready(page);
    const link = page.locator('#children-table a[data-unit]').first();
    const town = await link.getAttribute('data-unit');
    await link.click();
    await page.waitForURL(new RegExp(`/unit/${town}/today`));
    await ready(page);
    const got = (await page.$$eval('#children-table tbody tr', trs => trs.map(tr => tr.dataset.code))).sort();
    const want = psql(`SELECT code FROM rollcall.unit WHERE code LIKE '${town}%' AND length(code) = 12 ORDER BY 1`).map(r => r[0]);
    check('clicking a township shows its villages', got.length > 0 && JSON.stringify(got) === JSON.stringify(want),
      `page [${got}] registry [${want}]`);
    const crumbs = await page.textContent('#crumbs');
    check('the breadcrumb leads back to the county', crumbs.includes(psql(`SELECT name FROM rollcall.unit WHERE code = '${COUNTY}'`)[0][0]));
    await shot(page, 'township');
    await page.locator('#children-table a[data-unit]').first().click();
    await page.waitForURL(/\/unit\/\d{12}\/today/);
    await ready(page);
    const revisions = await page.$$eval('#history-table tbody tr', trs => trs.length).catch(() => 0);
    const village = page.url().match(/unit\/(\d{12})/)[1];
    const archived = psql(`SELECT count(*) FROM rollcall.report_archive WHERE unit_code = '${village}' AND period > current_date - 90`)[0][0];
    check('a village page lists its revision history', revisions > 0 && revisions <= Number(archived), `${revisions} rows, ${archived} archived`);
    await shot(page, 'village');
  });

  await step('trend plot draws 30 points per series', async () => {
    await page.goto(`${BASE}/unit/${COUNTY}/trends`);
    await ready(page, 90000);
    const plots = await page.evaluate(() => (window.__rcPlots || []).map(u => ({
      id: u.root.dataset.plot, x: u.data[0].length,
      series: u.series.slice(1).map((s, i) => ({ label: s.label, drawn: u.data[i + 1].filter(v => v != null).length })),
    })));
    const towns = Number(psql(`SELECT count(*) FROM rollcall.unit WHERE code LIKE '${COUNTY}%' AND length(code) = 9`)[0][0]);
    check('one plot for the county, one for its indicator, one per township', plots.length === 2 + towns, `${plots.length} plots`);
    const completeness = plots.filter(p => p.id === 'plot-completeness' || /^plot-\d{9}$/.test(p.id));
    const bad = [];
    for (const p of completeness) {
      if (p.x !== 30) bad.push(`${p.id} x=${p.x}`);
      for (const s of p.series.slice(0, p.id === 'plot-completeness' ? 4 : 2)) if (s.drawn !== 30) bad.push(`${p.id}/${s.label}=${s.drawn}`);
    }
    check('trend plot draws 30 points per series (read back from uPlot)', completeness.length === 1 + towns && !bad.length, bad.slice(0, 8).join(', '));
    const cells = await page.evaluate(() => window.__rcCalendar ? window.__rcCalendar.getOption().series[0].data.length : 0);
    const villages = Number(psql(`SELECT count(*) FROM rollcall.unit WHERE code LIKE '${COUNTY}%' AND length(code) = 12`)[0][0]);
    check('calendar strip has a cell per village and day', cells === villages * 30, `${cells} cells, ${villages} villages`);
    await page.selectOption('#indicator', 'persons_screened');
    await page.waitForURL(/indicator=persons_screened/);
    await ready(page, 90000);
    check('the indicator picker redraws for the chosen indicator', (await page.textContent('#plot-indicator')).length >= 0
      && (await page.evaluate(() => window.__rcPlots.length)) === 2 + towns);
    await shot(page, 'trends');
  });

  await step('alerts and urgent pages', async () => {
    for (const p of ['alerts', 'urgent']) {
      await page.goto(`${BASE}/unit/${COUNTY}/${p}`);
      check(`${p} page draws`, await ready(page) === 'ready');
      await shot(page, p, p !== 'alerts');
    }
    const urgent = Number(psql(`SELECT count(*) FROM rollcall.v_urgent WHERE unit_code LIKE '${COUNTY}%'
                                  AND period > '${period}'::date - 7 AND period <= '${period}'`)[0][0]);
    const rows = await page.$$eval('#urgent-table tbody tr', trs => trs.length).catch(() => 0);
    check('urgent page lists the subtree\'s incidents of the week', (urgent === 0) === (rows === 0) && rows <= urgent,
      `${rows} rows, v_urgent ${urgent}`);
  });

  await step('live update without reload', async () => {
    await page.goto(`${BASE}/unit/${COUNTY}/today`);
    await ready(page);
    await page.waitForSelector('#live.on', { timeout: 10000 });
    await page.evaluate(() => { window.__sameDocument = true; });
    const before = Number((await counters(page)).villages_reported);
    const village = psql(`SELECT unit_code FROM rollcall.v_missing WHERE period = '${period}'
                            AND unit_code LIKE '${COUNTY}%' AND length(unit_code) = 12 ORDER BY 1 LIMIT 1`)[0][0];
    // A token of its own: the day's token file keeps, for the villages the
    // day left missing, whatever an earlier run wrote (on a database since
    // wiped, unknown).  The intake learns a new token from a notification,
    // so a refusal is retried, and the clock starts at the accepted submission.
    const token = execFileSync(`${BUILD}/rollcall`, ['token', 'issue', village], { encoding: 'utf8' })
      .trim().split(/\s+/).pop();
    let t0 = 0;
    for (let attempt = 0; ; attempt++) {
      t0 = Date.now();
      try {
        execFileSync(`${BUILD}/rollcall`, ['submit', '--unit', village, '--period', period, '--kind', 'daily',
          '--indicator', 'persons_screened=7', '--token', token, '--url', env('ROLLCALL_HTTP')], { stdio: ['ignore', 'ignore', 'pipe'] });
        break;
      } catch (e) {
        if (attempt >= 30) throw e;
        await page.waitForTimeout(1000);
      }
    }
    let after = before;
    while (Date.now() - t0 < 5000) {
      after = Number((await counters(page)).villages_reported);
      if (after === before + 1) break;
      await page.waitForTimeout(50);
    }
    const ms = Date.now() - t0;
    check('a new village report appears on the open Today page within 5 s', after === before + 1, `reported ${before} -> ${after} after ${ms} ms`);
    check('... without a reload', await page.evaluate(() => window.__sameDocument === true));
    console.log(`figure: village report posted -> Today counter updated in ${ms} ms`);
  });

  await step('keyboard reaches the counters', async () => {
    await page.goto(`${BASE}/unit/${COUNTY}/today`);
    await ready(page);
    await page.locator('body').focus();
    let found = false;
    for (let i = 0; i < 40 && !found; i++) {
      await page.keyboard.press('Tab');
      found = await page.evaluate(() => document.activeElement && document.activeElement.dataset.counter === 'villages_late');
    }
    check('Tab reaches the late counter', found);
    if (found) {
      await page.keyboard.press('Enter');
      await page.waitForURL(/\/late/);
      check('Enter on a counter opens its list', await ready(page) === 'ready');
    }
  });

  await step('English labels and phone width', async () => {
    await page.goto(`${BASE}/unit/${COUNTY}/today`);
    await ready(page);
    await page.click('#lang');
    await ready(page);
    check('the language toggle switches the labels', (await page.textContent('[data-nav=today]')).trim() === 'Today');
    await shot(page, 'today-en');
    await page.click('#lang');
    await ready(page);
    await page.setViewportSize({ width: 375, height: 740 });
    await page.reload();
    await ready(page);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
    check('Today fits a 375 px wide screen', overflow <= 376, `${overflow}px wide`);
    await shot(page, 'today-phone');
    await page.setViewportSize({ width: 1366, height: 768 });
  });

  await step('another county sees only its county', async () => {
    other = await browserContext();
    const state = await login(other.page, env('RC_OTHER_USER'), env('RC_OTHER_PASSWORD'));
    const name = psql(`SELECT name FROM rollcall.unit WHERE code = '${OTHER}'`)[0][0];
    const title = await other.page.textContent('#page-title');
    check('the other county\'s official sees their own county', state === 'ready' && title.includes(name)
      && other.page.url().includes(`/unit/${OTHER}/today`), `${state} ${title}`);
    const codes = await other.page.$$eval('#children-table tbody tr', trs => trs.map(tr => tr.dataset.code));
    check('... and only units of it', codes.length > 0 && codes.every(c => c.startsWith(OTHER)), codes.join(','));
    await shot(other.page, 'today-other-county');
    await other.page.goto(`${BASE}/unit/${COUNTY}/today`);
    const st = await ready(other.page);
    check('the first county\'s URL shows the not-found page', st === 'notfound' && await other.page.isVisible('#not-found'), st);
    const body = await other.page.textContent('main');
    check('... naming nothing of it', !body.includes(psql(`SELECT name FROM rollcall.unit WHERE code = '${COUNTY}'`)[0][0]));
    await shot(other.page, 'notfound', false);
    const api = await other.page.request.get(`${BASE}/api/units/${COUNTY}/day`);
    check('the API answers 404 for it too', api.status() === 404, String(api.status()));
  });

  await step('signer signs off', async () => {
    await page.goto(`${BASE}/unit/${COUNTY}/today?period=${SIGN_PERIOD}`);
    await ready(page);
    const state = await page.getAttribute('#filing', 'data-status');
    check('the day waits for sign-off', state === 'awaiting_signoff', state);
    await shot(page, 'sign-before');
    await page.click('#sign');
    await page.waitForSelector('#filing[data-status=filed]', { timeout: 60000 });
    const by = await page.textContent('#filed-by');
    check('the filed state changes to filed and names the official', by.includes(env('RC_USER')), by);
    const db = psql(`SELECT status, coalesce(signoff_by, filed_by) FROM rollcall.v_filing WHERE unit_code = '${COUNTY}' AND period = '${SIGN_PERIOD}'`)[0];
    check('v_filing says filed by the official', db && db[0] === 'filed' && db[1] === env('RC_USER'), JSON.stringify(db));
    await shot(page, 'sign-after');
  });

  await step('unknown page', async () => {
    await page.goto(`${BASE}/no/such/page`);
    check('an unknown path shows the not-found page', await ready(page) === 'notfound');
  });
} finally {
  if (other) await other.ctx.close();
  await ctx.close();
}
console.log(`dashboard browser tests: ${passed} passed, ${failed} failed; screenshots in ${SHOTS}`);
process.exit(failed ? 1 : 0);
