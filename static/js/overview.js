// The workflow overview's charts (templates/dashboard/_overview.html), drawn with the vendored Chart.js
// from the page's <script type="application/json" id="overview-data"> block. The range switch swaps
// the whole #overview section (htmx) with a new data block: a MutationObserver notices it and the
// charts are drawn again (also when Back restores an earlier range), so this file does not depend on
// htmx's event names.
(() => {
  'use strict';

  const OUTCOMES = [
    ['succeeded', 'Succeeded', '#2b8a3e'],
    ['failed', 'Failed or crashed', '#c92a2a'],
    ['cancelled', 'Cancelled', '#868e96'],
    ['unfinished', 'Queued, running or waiting', '#1971c2'],
  ];
  const charts = [];

  // "2026-12-01T13:00:00Z" → "13:00" for the last day, "12-01 13:00" for the last week.
  function hourLabel(iso, range) {
    const time = iso.slice(11, 16);
    return range === 'day' ? time : `${iso.slice(5, 10)} ${time}`;
  }

  function baseOptions(extra) {
    return { animation: false, responsive: true, maintainAspectRatio: false, ...extra };
  }

  function hourlyChart(canvas, data) {
    const labels = data.hourly.map((b) => hourLabel(b.hour, data.range));
    const datasets = OUTCOMES.map(([key, label, color]) => ({
      label, backgroundColor: color, data: data.hourly.map((b) => b[key]), stack: 'outcomes',
    }));
    return new Chart(canvas, {
      type: 'bar',
      data: { labels, datasets },
      options: baseOptions({
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
      }),
    });
  }

  function outcomesChart(canvas, data) {
    return new Chart(canvas, {
      type: 'doughnut',
      data: {
        labels: OUTCOMES.map(([, label]) => label),
        datasets: [{ data: OUTCOMES.map(([key]) => data.totals[key]), backgroundColor: OUTCOMES.map((o) => o[2]) }],
      },
      options: baseOptions({ plugins: { legend: { position: 'bottom' } } }),
    });
  }

  function durationsChart(canvas, data) {
    const labels = data.hourly.map((b) => hourLabel(b.hour, data.range));
    const line = (label, key, color) => ({
      label, data: data.hourly.map((b) => b[key]), borderColor: color, backgroundColor: color, spanGaps: false,
      pointRadius: data.range === 'day' ? 3 : 0,  // 168 points a week: the line alone reads better
    });
    return new Chart(canvas, {
      type: 'line',
      data: { labels, datasets: [line('p50 (s)', 'p50_seconds', '#3b5bdb'), line('p95 (s)', 'p95_seconds', '#e67700')] },
      options: baseOptions({ scales: { y: { beginAtZero: true, title: { display: true, text: 'seconds' } } } }),
    });
  }

  // Two lines per bar: where and what, then the message's start (the table below has all of it).
  function errorLabel(error) {
    const message = error.message.length > 40 ? `${error.message.slice(0, 39).trimEnd()}…` : error.message;
    return [`${error.node}: ${error.type}`, message];
  }

  function errorsChart(canvas, data) {
    const labels = data.top_errors.map(errorLabel);
    return new Chart(canvas, {
      type: 'bar',
      data: { labels, datasets: [{ label: 'Failures', data: data.top_errors.map((e) => e.count), backgroundColor: '#c92a2a' }] },
      options: baseOptions({ indexAxis: 'y', scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } }),
    });
  }

  const DRAWERS = { 'chart-hourly': hourlyChart, 'chart-outcomes': outcomesChart,
                    'chart-durations': durationsChart, 'chart-errors': errorsChart };

  function draw() {
    const block = document.querySelector('#overview-data:not([data-drawn])');
    if (!block || typeof window.Chart === 'undefined') return;
    block.dataset.drawn = 'true';
    const data = JSON.parse(block.textContent);
    while (charts.length) charts.pop().destroy();
    for (const [id, drawChart] of Object.entries(DRAWERS)) {
      const canvas = document.getElementById(id);
      if (canvas) charts.push(drawChart(canvas, data));
    }
    document.getElementById('overview').dataset.charts = 'drawn';
  }

  draw();  // deferred: the document is parsed, and Chart.js (deferred before this file) is loaded
  // The root, not <body>: restoring a pushed URL (Back) may swap the body element itself.
  new MutationObserver(draw).observe(document.documentElement, { childList: true, subtree: true });
})();
