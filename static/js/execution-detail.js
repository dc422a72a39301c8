// The execution page: select a node (canvas, timeline, attempts table) to see its details, and keep
// the timeline, the summary and the attempts live while the execution runs. The node badges on the
// canvas are swapped by the WebSocket itself (out-of-band); on each event this file re-fetches the
// server-rendered parts, at most every REFRESH_MS (the last event is always followed by a fetch).
(function () {
  'use strict';
  const page = document.getElementById('execution-page');
  if (!page) return;
  const base = `/executions/${page.dataset.executionId}`;
  const REFRESH_MS = 400;

  const selected = () => {
    const panel = document.getElementById('node-panel');
    return panel && panel.dataset.nodeId ? panel.dataset.nodeId : '';
  };

  function highlight() {
    const nodeId = selected();
    if (window.patchwireView) window.patchwireView.select(nodeId);
    for (const row of document.querySelectorAll('[data-timeline-node]')) {
      row.classList.toggle('selected', row.dataset.timelineNode === nodeId);
    }
  }

  function select(nodeId, href) {
    const url = href || `${base}/nodes/${encodeURIComponent(nodeId)}`;
    htmx.ajax('GET', url, { target: '#node-panel', swap: 'outerHTML' }).then(() => {
      history.replaceState(null, '', url);
      highlight();
    });
  }

  document.addEventListener('pw:node-selected', (e) => select(e.detail.nodeId));
  // Timeline rows and the attempts table link to the node's page; with JS they open it in place.
  page.addEventListener('click', (e) => {
    const link = e.target.closest('a[data-select-node]');
    if (!link || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    select(link.dataset.selectNode, link.getAttribute('href'));
  });

  // --- live: throttled re-fetch of the parts an event may change -----------------------------------
  let timer = null;
  let again = false;
  let panelDirty = false;

  function refresh() {
    const node = selected();
    htmx.ajax('GET', `${base}/live${node ? `?node=${encodeURIComponent(node)}` : ''}`,
              { target: '#live-sink', swap: 'innerHTML' }).then(highlight);
    if (panelDirty && node) {
      panelDirty = false;
      htmx.ajax('GET', `${base}/nodes/${encodeURIComponent(node)}`, { target: '#node-panel', swap: 'outerHTML' })
        .then(highlight);
    }
  }

  function soon() {
    if (timer) { again = true; return; }
    refresh();
    timer = setTimeout(function done() {
      timer = null;
      if (again) { again = false; soon(); }
    }, REFRESH_MS);
  }

  document.addEventListener('htmx:ws:after:message:incoming', (e) => {
    const data = e.detail && e.detail.message ? e.detail.message.data : '';
    const node = selected();
    // the panel is re-rendered only when its node changed (a re-render folds its trees up again)
    if (node && typeof data === 'string' && data.includes(`id="status-${node}"`)) panelDirty = true;
    soon();
  });

  // the panel and the timeline are replaced by swaps: mark the selection again afterwards
  document.addEventListener('htmx:after:swap', highlight);
  document.addEventListener('htmx:after:settle', highlight);
  highlight();
})();
