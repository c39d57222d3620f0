// A tiny element builder: h('a', {href, class}, child, ...).  Strings become
// text nodes, so nothing from the API is ever parsed as HTML.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

// A table whose header buttons sort it; columns: {key, label, num, render,
// sort (value for sorting)}.  Re-sorting redraws the body only.
export function sortableTable(columns, rows, opts = {}) {
  let sortKey = opts.sortKey || null, dir = opts.dir || 1;
  const tbody = h('tbody');
  const ths = columns.map(c => h('th', { scope: 'col', class: c.num ? 'num' : (c.cls || null) },
    c.sortable === false ? c.label : h('button', { type: 'button', onclick: () => {
      dir = sortKey === c.key ? -dir : 1; sortKey = c.key; draw();
      if (opts.onSort) opts.onSort(sortKey, dir);
    } }, c.label)));
  function value(c, r) { return c.sort ? c.sort(r) : r[c.key]; }
  function draw() {
    const data = rows.slice();
    const col = columns.find(c => c.key === sortKey);
    if (col) data.sort((a, b) => {
      const x = value(col, a), y = value(col, b);
      if (x == null && y == null) return 0;
      if (x == null) return 1;
      if (y == null) return -1;
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
    columns.forEach((c, i) => {
      if (c.key === sortKey) ths[i].setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
      else ths[i].removeAttribute('aria-sort');
    });
    clear(tbody);
    for (const r of data) {
      tbody.append(h('tr', { dataset: opts.rowData ? opts.rowData(r) : {} },
        columns.map(c => h('td', { class: c.num ? 'num' : (c.cls || null) },
          c.render ? c.render(r) : (r[c.key] == null ? '—' : r[c.key])))));
    }
  }
  draw();
  return h('div', { class: 'table-wrap' },
    h('table', { class: opts.cls || null, id: opts.id || null }, h('thead', null, h('tr', null, ths)), tbody));
}
