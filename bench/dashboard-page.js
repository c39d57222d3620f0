// Times the dashboard's Today page in headless chromium: from the start of
// the navigation to the page fully drawn (counters, children table, filed
// state: body[data-state=ready]), read from the page's own clock
// (performance.now() at ready, window.__rcReadyAt).  Prints one line of
// key=value figures.
//
//   node bench/dashboard-page.js   (env: ROLLCALL_DASHBOARD, RC_UNIT, RC_PERIOD (optional),
//                                   RC_RUNS (default 10), and RC_API_KEY or RC_USER + RC_PASSWORD)
//
// With RC_API_KEY every request of the page carries "Authorization: Bearer"
// (the scripts' way in) and the sign-in form is skipped.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(new URL('../web/package.json', import.meta.url));
const { chromium } = require('playwright-core');
const base = process.env.ROLLCALL_DASHBOARD.replace(/\/$/, '');
const unit = process.env.RC_UNIT || '130102';
const runs = Number(process.env.RC_RUNS || 10);
const key = process.env.RC_API_KEY;
const url = `${base}/unit/${unit}/today${process.env.RC_PERIOD ? `?period=${process.env.RC_PERIOD}` : ''}`;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rc-bench-chromium-'));
const ctx = await chromium.launchPersistentContext(dir, {
  executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1366, height: 768 },
  extraHTTPHeaders: key ? { Authorization: `Bearer ${key}` } : {},
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run',
    '--disable-component-update', '--disable-sync'],
});
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  if (!key) {
    await page.goto(`${base}/login`);
    await page.fill('#user', process.env.RC_USER);
    await page.fill('#password', process.env.RC_PASSWORD);
    await Promise.all([page.waitForURL(/\/today/), page.click('#login-form button[type=submit]')]);
    await page.waitForSelector('body[data-state=ready]');
  }
  const cold = [], warm = [];
  for (let i = 0; i < runs; i++) {
    // A full navigation each time (not the client router): what an official
    // opening the page sees.  The first is cold (module and vendor files from
    // the server); the rest use the browser cache, as a returning user does.
    await page.goto(url, { waitUntil: 'commit' });
    await page.waitForSelector('body[data-state=ready]', { timeout: 60000 });
    const ms = await page.evaluate(() => window.__rcReadyAt);
    (i === 0 ? cold : warm).push(ms);
  }
  warm.sort((a, b) => a - b);
  const q = p => warm[Math.min(warm.length - 1, Math.floor(p * warm.length))];
  const children = await page.$$eval('#children-table tbody tr', trs => trs.length);
  console.log(`dashboard-page: unit=${unit} children=${children} runs=${runs} first_ms=${cold[0].toFixed(0)} ` +
    `median_ms=${q(0.5).toFixed(0)} p90_ms=${q(0.9).toFixed(0)} max_ms=${warm[warm.length - 1].toFixed(0)}`);
} finally {
  await ctx.close();
  try { fs.rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 }); } catch { /* left in /tmp */ }
}
