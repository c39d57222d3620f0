// The dashboard API (CONTRACT.md): JSON over fetch with the session cookie.
// 401 sends the browser to the login page; 404 becomes NotFound, which the
// router shows as the not-found page (the server answers 404 alike for an
// unknown unit and for one outside the account's subtree).
export class NotFound extends Error {}
export class Unauthorized extends Error {}
export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function request(method, path, body) {
  const opts = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  if (res.status === 401) throw new Unauthorized('not signed in');
  if (res.status === 404) throw new NotFound('not found');
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (!res.ok) throw new ApiError(res.status, (data && data.error) || res.statusText);
  return data;
}

export const get = path => request('GET', path);
export const post = (path, body = {}) => request('POST', path, body);

export function unitPath(code, what, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== '') q.set(k, v);
  const qs = q.toString();
  return `/api/units/${encodeURIComponent(code)}${what ? '/' + what : ''}${qs ? '?' + qs : ''}`;
}

// The signed-in account, cached for the page's life (cleared at sign-out).
let me = null;
export async function whoami(force) {
  if (!me || force) me = await get('/api/me');
  return me;
}
export function forget() { me = null; }

export async function login(user, password) {
  const res = await fetch('/api/login', {
    method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ user, password }),
  });
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (!res.ok) throw new ApiError(res.status, (data && data.error) || res.statusText);
  me = data;
  return data;
}

export async function logout() {
  try { await post('/api/logout'); } finally { me = null; }
}
