// The dashboard's shell: client-side routing over /unit/{code}/{page}, the
// header (unit navigation, language, account), and the hand-over to the
// page modules.  Every page renders into <main>; when it has drawn it sets
// body[data-state=ready] (the browser tests and the bench wait for it).
import { h, clear } from './dom.js';
import { t, setLang, currentLang } from './i18n.js';
import { whoami, logout, NotFound, Unauthorized } from './api.js';
import * as login from './pages/login.js';
import * as notfound from './pages/notfound.js';

// Pages load on first use: Today must not wait for the chart libraries
// (ECharts alone is 1.1 MB of script) that only Trends needs.
const PAGES = {
  today: () => import('./pages/today.js'),
  missing: () => import('./pages/missing.js'),
  late: () => import('./pages/late.js'),
  trends: () => import('./pages/trends.js'),
  alerts: () => import('./pages/alerts.js'),
  urgent: () => import('./pages/urgent.js'),
  villages: () => import('./pages/villages.js'),
};
const NAV = ['today', 'missing', 'late', 'trends', 'alerts', 'urgent'];

let cleanups = [];
let generation = 0;

function runCleanups() {
  for (const fn of cleanups) { try { fn(); } catch { /* a page's cleanup never blocks the next page */ } }
  cleanups = [];
}

export function navigate(url, replace) {
  if (replace) history.replaceState(null, '', url); else history.pushState(null, '', url);
  route(true);
}

function parse(pathname) {
  if (pathname === '/login') return { page: 'login' };
  if (pathname === '/' || pathname === '') return { page: 'home' };
  const m = pathname.match(/^\/unit\/(\d{2}|\d{4}|\d{6}|\d{9}|\d{12})(?:\/([a-z]+))?\/?$/);
  if (m && (!m[2] || PAGES[m[2]])) return { page: m[2] || 'today', code: m[1] };
  return { page: 'notfound' };
}

function header(me, code, page, params) {
  const top = clear(document.getElementById('top'));
  const keep = params.get('period') ? '?period=' + encodeURIComponent(params.get('period')) : '';
  top.append(h('a', { class: 'brand', href: me ? `/unit/${me.unit.code}/today` : '/' }, 'Rollcall 日报'));
  if (me && code) {
    top.append(h('nav', { 'aria-label': 'pages' }, NAV.map(p =>
      h('a', { href: `/unit/${code}/${p}${keep}`, 'aria-current': p === page ? 'page' : null, dataset: { nav: p } }, t(p)))));
  }
  top.append(h('span', { class: 'spacer' }));
  top.append(h('button', { type: 'button', id: 'lang', 'aria-label': 'language',
    onclick: () => { setLang(currentLang() === 'en' ? 'zh' : 'en'); route(false); } }, t('lang')));
  if (me) {
    top.append(h('span', { class: 'who', id: 'who' }, `${me.user} · ${me.unit.name}`));
    top.append(h('button', { type: 'button', id: 'logout', onclick: async () => {
      try { await logout(); } catch { /* the session is gone either way */ }
      navigate('/login');
    } }, t('signout')));
  }
}

async function route(focus) {
  const gen = ++generation;
  runCleanups();
  const main = document.getElementById('main');
  document.body.dataset.state = 'loading';
  const params = new URLSearchParams(location.search);
  const r = parse(location.pathname);
  const ctx = {
    main, params, code: r.code, page: r.page, navigate,
    onCleanup: fn => cleanups.push(fn),
    current: () => gen === generation,
    // performance.now() at ready = navigation start to fully drawn (the bench reads it).
    ready: () => { if (gen === generation) { window.__rcReadyAt = performance.now(); document.body.dataset.state = 'ready'; } },
  };
  try {
    if (r.page === 'login') {
      header(null, null, 'login', params);
      clear(main);
      await login.render(ctx);
      ctx.ready();
      return;
    }
    const me = await whoami();
    ctx.me = me;
    if (r.page === 'home') { navigate(`/unit/${me.unit.code}/today`, true); return; }
    if (r.page === 'notfound') throw new NotFound('no such page');
    header(me, r.code, r.page, params);
    clear(main).append(h('p', { class: 'loading' }, t('loading')));
    const mod = await PAGES[r.page]();
    if (!ctx.current()) return;
    await mod.render(ctx);
    if (!ctx.current()) return;
    ctx.ready();
  } catch (e) {
    if (!ctx.current()) return;
    if (e instanceof Unauthorized) {
      const next = location.pathname + location.search;
      navigate('/login' + (next !== '/' && next !== '/login' ? '?next=' + encodeURIComponent(next) : ''), true);
      return;
    }
    runCleanups();
    if (e instanceof NotFound) {
      let me = null;
      try { me = await whoami(); } catch { me = null; }
      header(me, null, 'notfound', params);
      clear(main);
      notfound.render(ctx, me);
      document.body.dataset.state = 'notfound';
      return;
    }
    clear(main).append(h('div', { class: 'card error', role: 'alert' }, `${t('error')}: ${e.message}`));
    document.body.dataset.state = 'error';
    console.error(e);
  }
  if (focus) main.focus({ preventScroll: true });
}

// Same-origin links move through the router; /api/ links (CSV downloads)
// and modified clicks keep the browser's own behaviour.
document.addEventListener('click', e => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/')) return;
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', () => route(false));

setLang(currentLang());
route(false);
