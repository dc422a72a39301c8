// Test while building (docs/frontend-notes.md, "Test while building"): the output pane's pin form, expression
// previews on config fields, and a refresh of the node's data (output and input panes) when a run finishes.
// The buttons, the data views and the previews are server-rendered; this file only wires them.
(function () {
  'use strict';
  const root = document.getElementById('editor-root');
  const panel = document.getElementById('panel');
  if (!root || !panel) return;
  const TERMINAL = new Set(['succeeded', 'failed', 'crashed', 'cancelled']);
  const SKIP = /^(name|version|settings\.|.*\.name$)/; // not config values that take expressions

  // --- pin / unpin: a node write, sent after this tab's other writes of the node, with its version ----------
  panel.addEventListener('submit', async (e) => {
    const form = e.target.closest('form.pin-form');
    if (!form) return;
    e.preventDefault();
    const action = e.submitter ? e.submitter.value : 'pin';
    const url = action === 'unpin' ? form.dataset.unpinUrl : form.dataset.pinUrl;
    const data = action === 'unpin' ? {} : { data: form.elements.data.value };
    let response;
    try {
      response = await window.patchwireEditorHooks.sendNode(form.dataset.nodeId, 'POST', url, data);
    } catch (error) {
      return; // the editor put the server's message in the flash area
    }
    await htmx.swap({ target: '#node-data', swap: 'outerHTML', text: await response.text(), sourceElement: panel });
  });

  // --- expression previews on the node's config fields ----------------------------------------------------
  function wirePreviews() {
    const form = panel.querySelector('form.node-form');
    const section = panel.querySelector('.node-testing');
    if (!form || !section || form.dataset.previews) return;
    form.dataset.previews = 'on';
    const url = `${section.dataset.nodeUrl}/preview`;
    let n = 0;
    for (const input of form.querySelectorAll('input[type=text], textarea')) {
      if (!input.name || SKIP.test(input.name)) continue;
      input.dataset.exprField = 'on'; // takes expressions: a drop target, autocomplete (editor-expressions.js)
      const output = document.createElement('output');
      output.className = 'expr-preview';
      output.id = `expr-preview-${++n}`;
      output.setAttribute('aria-live', 'polite');
      output.setAttribute('aria-label', `Preview of ${input.getAttribute('aria-label') || input.name}`);
      input.after(output);
      input.setAttribute('aria-describedby', [input.getAttribute('aria-describedby'), output.id].filter(Boolean).join(' '));
      input.setAttribute('hx-get', url);
      input.setAttribute('hx-vals', JSON.stringify({ _field: input.name }));
      input.setAttribute('hx-target', `#${output.id}`);
      input.setAttribute('hx-swap', 'innerHTML');
      const now = input.value.includes('{{') ? 'load, ' : '';
      input.setAttribute('hx-trigger', `${now}input changed delay:300ms, pw-refresh`);
    }
    htmx.process(form);
  }
  document.addEventListener('htmx:after:swap', wirePreviews);
  new MutationObserver(wirePreviews).observe(panel, { childList: true });

  // --- when a run finishes: the selected node's data and its previews are read again -----------------------
  let lastFinished = null;
  new MutationObserver(() => {
    const status = document.getElementById('run-status');
    if (!status) return;
    const state = status.dataset.status;
    const link = status.querySelector('a');
    const key = `${link ? link.getAttribute('href') : ''}:${state}`;
    if (!TERMINAL.has(state) || key === lastFinished) return;
    lastFinished = key;
    const data = document.getElementById('node-data');
    const section = panel.querySelector('.node-testing');
    if (data && section) {
      htmx.ajax('GET', `${section.dataset.nodeUrl}/data`, { target: '#node-data', swap: 'outerHTML' });
    }
    const input = document.getElementById('input-data-box');
    if (input && section) { // the node editor's input pane, showing the same source as before
      const source = input.dataset.source ? `?source=${encodeURIComponent(input.dataset.source)}` : '';
      htmx.ajax('GET', `${section.dataset.nodeUrl}/input${source}`, { target: '#input-data-box', swap: 'outerHTML' });
    }
    for (const input of panel.querySelectorAll('form.node-form [hx-get]')) {
      if (input.value.includes('{{')) htmx.trigger(input, 'pw-refresh');
    }
  }).observe(document.getElementById('run-panel'), { subtree: true, childList: true, attributes: true,
    attributeFilter: ['data-status'] });
})();
