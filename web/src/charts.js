// The two chart libraries, vendored into /vendor at build time (no CDN):
// uPlot draws the time series, Apache ECharts the calendar strip.  Every
// uPlot instance is kept in window.__rcPlots so that the browser tests read
// back what was drawn.
import uPlot from '/vendor/uPlot.esm.js';
import * as echarts from '/vendor/echarts.esm.min.mjs';

export const COLORS = { reported: '#2e8b57', zero: '#3a78c2', late: '#e08a00', missing: '#c62828', copied: '#7b3fa6', indicator: '#123456' };

export function dayToUnix(day) {
  const [y, m, d] = day.split('-').map(Number);
  return Date.UTC(y, m - 1, d) / 1000;
}

function plots() { return (window.__rcPlots = window.__rcPlots || []); }

// series: [{label, values, color, scale}], x: unix seconds.
export function lineChart(el, { x, series, width, height, yLabel, percent, legend = true }) {
  const scales = { x: { time: true } };
  const axes = [{}, { label: yLabel || '', size: 50, values: percent ? (u, v) => v.map(n => `${n}%`) : undefined }];
  const hasInd = series.some(s => s.scale === 'ind');
  if (percent) scales.y = { range: [0, 100] };
  if (hasInd) { scales.ind = { auto: true }; axes.push({ scale: 'ind', side: 1, grid: { show: false }, size: 56 }); }
  const opts = {
    width: width || Math.max(280, el.clientWidth || 600), height: height || 240,
    scales, axes, legend: { show: legend },
    series: [{}, ...series.map(s => ({ label: s.label, stroke: s.color, width: 2, scale: s.scale || 'y',
      points: { show: true, size: 4 }, spanGaps: false }))],
  };
  const u = new uPlot(opts, [x, ...series.map(s => s.values)], el);
  u.root.dataset.plot = el.id || '';
  plots().push(u);
  return u;
}

export function resetPlots() {
  for (const u of plots()) { try { u.destroy(); } catch { /* already gone with its page */ } }
  window.__rcPlots = [];
}

// A heat strip: one row per village, one cell per day, a colour per status;
// cells whose numbers repeat the day before are drawn in the "copied" colour.
export function calendarStrip(el, { days, rows, labels }) {
  const cats = ['reported', 'zero', 'late', 'missing', 'copied'];
  const data = [];
  rows.forEach((r, yi) => r.days.forEach((s, xi) => {
    const copied = r.same_as_previous && r.same_as_previous[xi] && s !== 'missing';
    data.push([xi, yi, copied ? 4 : cats.indexOf(s)]);
  }));
  el.style.height = `${Math.max(160, rows.length * 14 + 90)}px`;
  const chart = echarts.init(el, null, { renderer: 'canvas' });
  chart.setOption({
    animation: false,
    aria: { enabled: true },
    grid: { left: 150, right: 16, top: 40, bottom: 40 },
    tooltip: { formatter: p => `${rows[p.value[1]].name} ${days[p.value[0]]}: ${labels[cats[p.value[2]]]}` },
    xAxis: { type: 'category', data: days.map(d => d.slice(5)), splitArea: { show: true } },
    yAxis: { type: 'category', data: rows.map(r => r.name), inverse: true, axisLabel: { fontSize: 11, interval: 0 } },
    visualMap: { type: 'piecewise', orient: 'horizontal', top: 0, left: 'center', dimension: 2,
      pieces: cats.map((c, i) => ({ value: i, label: labels[c], color: COLORS[c] })) },
    // Drawn in one pass (no progressive chunks), so that "drawn" means every cell.
    series: [{ type: 'heatmap', data, progressive: 0, itemStyle: { borderColor: '#fff', borderWidth: 1 } }],
  });
  window.__rcCalendar = chart;
  return chart;
}

// Resolves once ECharts has finished drawing (or after a second at most).
export function drawn(chart) {
  return new Promise(resolve => {
    const done = () => { clearTimeout(timer); resolve(); };
    const timer = setTimeout(done, 1000);
    chart.on('finished', done);
  });
}
