// The node panel saves itself as the user types: 600 ms after the last input or change, the form is
// posted with the node's version (through editor.js's per-node write queue, so the 409 protection on
// stale edits holds) and the header X-Autosave. The server answers with a small JSON
// (webapp/workflows/autosave.py): the new version, the fields refused, the canvas's out-of-band parts.
// They are applied in place: the form being typed in is never replaced.
//
// A pending edit is never dropped: opening another node, a panel swap (settings, history), Escape, the
// panel's form leaving the page, and the page itself unloading (a keepalive fetch) all send it first.
// The Save button saves at once when pressed; the state (Saved, Saving…, …) is shown next to it.
(function () {
  'use strict';
  const root = document.getElementById('editor-root');
  const panel = document.getElementById('panel');
  const hooks = window.patchwireEditorHooks;
  if (!root || !panel || !hooks) return;

  const DELAY = 600;
  const base = `/workflows/${root.dataset.workflowId}`;
  const csrf = document.querySelector('meta[name=csrf-token]').content;
  const flash = document.getElementById('flash');
  const STATES = {
    saved: 'Saved',
    saving: 'Saving…',
    dirty: 'Unsaved changes',
    invalid: 'Not saved: fix the fields',
    conflict: 'Not saved: changed elsewhere',
    failed: 'Not saved',
  };
  // per form: {timer, edits (count of input events), sent (edits covered by the last save sent), inFlight,
  // last (the promise of the last save, answer applied)}
  const tracked = new WeakMap();

  const isNodeForm = (el) => el && el.matches && el.matches('form.node-form');
  const panelForm = () => panel.querySelector('form.node-form');

  function stateOf(form) {
    let s = tracked.get(form);
    if (!s) { s = { timer: null, edits: 0, sent: 0, inFlight: 0, last: null }; tracked.set(form, s); }
    return s;
  }

  // The Save button (its name stays "Save") and the state shown next to it.
  function show(form, state) {
    const button = form.querySelector('.node-save');
    const text = form.querySelector('.node-save-state');
    if (button) button.dataset.state = state;
    if (text) { text.dataset.state = state; text.textContent = STATES[state]; }
  }

  function values(form) {
    const body = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (typeof value === 'string') body.append(key, value);
    return body;
  }

  function edited(form) {
    const s = stateOf(form);
    s.edits++;
    show(form, 'dirty');
    clearTimeout(s.timer);
    s.timer = setTimeout(() => { flush(form); }, DELAY);
  }

  // Sends the form's edits not sent yet (if any); resolves when this tab's writes of the node are done.
  function flush(form) {
    const s = stateOf(form);
    clearTimeout(s.timer);
    s.timer = null;
    const nodeId = form.dataset.nodeId;
    if (s.edits === s.sent) return s.last || Promise.resolve();
    if (window.patchwireApi && !window.patchwireApi.dfOf(nodeId)) return Promise.resolve(); // deleted meanwhile
    const body = values(form);
    const edits = s.edits;
    s.sent = edits;
    s.inFlight++;
    show(form, 'saving');
    hooks.setState('Saving…');
    const write = hooks.queueNode(nodeId, (version) => {
      body.set('version', String(version !== undefined ? version : form.dataset.version));
      return fetch(`${base}/nodes/${nodeId}`, {
        method: 'POST', credentials: 'same-origin', body,
        headers: { 'X-CSRFToken': csrf, 'HX-Request': 'true', 'X-Autosave': '1', 'Accept': 'text/html' },
      });
    });
    s.last = write.then((response) => answered(form, body, edits, response), () => failed(form))
      .finally(() => { s.inFlight--; });
    return s.last;
  }

  async function answered(form, body, edits, response) {
    if (response.status === 401 && response.headers.get('HX-Redirect')) {
      window.location.assign(response.headers.get('HX-Redirect')); // the session ended: log in again
      return;
    }
    const newer = stateOf(form).edits > edits; // typed on while this save was out: that is saved next
    if (response.status === 200 || response.status === 422) {
      const result = await response.json();
      setVersion(form, result.version);
      showErrors(form, result.errors || {});
      flash.innerHTML = '';
      if (response.status === 200) {
        applyCanvas(form.dataset.nodeId, result);
        root.dispatchEvent(new CustomEvent('pw:node-autosaved', {
          detail: { nodeId: form.dataset.nodeId, values: [...body.entries()], form } }));
      }
      const state = response.status === 200 ? 'saved' : 'invalid';
      hooks.setState(response.status === 200 ? 'Saved' : 'Not saved');
      show(form, newer ? 'dirty' : state);
      return;
    }
    flash.innerHTML = await response.text(); // a 409 is the conflict message with "Reload the workflow"
    hooks.setState('Not saved');
    show(form, response.status === 409 ? 'conflict' : 'failed');
  }

  function failed(form) {
    hooks.setState('Not saved');
    show(form, 'failed');
  }

  function setVersion(form, version) {
    form.dataset.version = String(version);
    const input = form.querySelector('input[name=version]');
    if (input) input.value = String(version);
  }

  // The server's field errors, in place: on the field's block, under it; the typed text stays.
  function showErrors(form, errors) {
    for (const old of form.querySelectorAll('.field-error[data-autosave]')) old.remove();
    for (const block of form.querySelectorAll('.field.has-error')) {
      if (!block.querySelector('.field-error')) block.classList.remove('has-error');
    }
    for (const old of form.querySelectorAll('.field.has-error .field-error:not([data-autosave])')) {
      old.closest('.field').classList.remove('has-error');
      old.remove(); // a server-rendered error of an earlier full save: replaced by the current answer
    }
    if (window.pwForms) errors = window.pwForms.placeRowErrors(form, errors); // condition rows: next to each row
    const summary = form.querySelector('.autosave-summary');
    if (summary) summary.hidden = !Object.keys(errors).length;
    for (const [name, message] of Object.entries(errors)) {
      const control = form.querySelector(`[name="${CSS.escape(name)}"], [name^="${CSS.escape(name)}."], #cfg-${CSS.escape(name)}`);
      const block = control ? control.closest('.field') || control.parentElement : form.querySelector('.node-save-row');
      const p = document.createElement('p');
      p.className = 'field-error';
      p.dataset.autosave = '';
      p.setAttribute('role', 'alert');
      p.textContent = message;
      if (control && control.id) {
        p.id = `${control.id}-error`;
        control.setAttribute('aria-describedby', p.id);
      }
      block.classList.add('has-error');
      block.appendChild(p);
    }
  }

  // The node's title, badge and ports on the canvas (out-of-band parts), and its outputs in Drawflow.
  function applyCanvas(nodeId, result) {
    const holder = document.createElement('template');
    holder.innerHTML = result.oob || '';
    for (const el of [...holder.content.querySelectorAll('[hx-swap-oob]')]) {
      const current = el.id && document.getElementById(el.id);
      if (!current) continue;
      el.removeAttribute('hx-swap-oob');
      current.replaceWith(el);
    }
    if (result.outputs && result.outputs.length) {
      document.dispatchEvent(new CustomEvent('pw-ports', { detail: { node: nodeId, outputs: result.outputs } }));
    }
  }

  function flushOpen() {
    const form = panelForm();
    if (form) flush(form);
  }

  // --- what starts a save -------------------------------------------------------------------------
  for (const name of ['input', 'change']) {
    panel.addEventListener(name, (e) => {
      const form = e.target.closest && e.target.closest('form.node-form');
      if (form && e.target.name && e.target.name !== 'version') edited(form);
    });
  }
  // The Save button and Enter in a field: save now (the form is not replaced, htmx never sees the submit).
  document.addEventListener('submit', (e) => {
    if (!isNodeForm(e.target)) return;
    e.preventDefault();
    e.stopPropagation();
    stateOf(e.target).edits++; // pressed: saved now, even with nothing new (and it says so)
    flush(e.target);
  }, true);
  document.addEventListener('htmx:config:request', (e) => {
    const ctx = e.detail && e.detail.ctx;
    if (!ctx) return;
    const form = ctx.request && ctx.request.form;
    if (isNodeForm(form) && ctx.request.method === 'POST' && (ctx.request.action || '').endsWith(`/nodes/${form.dataset.nodeId}`)) {
      e.preventDefault(); // a submit that reached htmx anyway: saved the autosave way
      flush(form);
      return;
    }
    const target = ctx.target;
    if (target === panel || target === '#panel' || (target && target.id === 'panel')) flushOpen();
    // An action pressed while an edit is unsent or on its way (Run, Publish, Run this node…) goes once
    // the edit is stored, so it acts on what the user sees in the form.
    const open = panelForm();
    const source = ctx.sourceElement;
    if (open && ctx.request && ctx.request.method === 'POST' && source && source.matches && source.matches('button')) {
      const s = stateOf(open);
      if (s.edits !== s.sent || s.inFlight) {
        e.preventDefault();
        flush(open).then(() => { if (source.isConnected) source.click(); });
      }
    }
  });
  document.addEventListener('pw:leave-node', flushOpen);
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') flushOpen(); }, true);

  // A form taken off the page by anything else (a panel swap, a close button): its edit is sent now.
  let watched = panelForm();
  new MutationObserver(() => {
    if (watched && !watched.isConnected) flush(watched);
    watched = panelForm();
  }).observe(panel, { childList: true, subtree: true });

  // Leaving or reloading the page: a keepalive request outlives it (with the CSRF header and the version).
  window.addEventListener('pagehide', () => {
    const form = panelForm() || watched;
    if (!form) return;
    const s = stateOf(form);
    clearTimeout(s.timer);
    if (s.edits === s.sent) return;
    s.sent = s.edits;
    const nodeId = form.dataset.nodeId;
    const body = values(form);
    const version = hooks.versions.get(nodeId);
    body.set('version', String(version !== undefined ? version : form.dataset.version));
    fetch(`${base}/nodes/${nodeId}`, {
      method: 'POST', credentials: 'same-origin', keepalive: true, body,
      headers: { 'X-CSRFToken': csrf, 'HX-Request': 'true', 'X-Autosave': '1', 'Accept': 'text/html' },
    }).catch(() => {});
  });

  window.patchwireAutosave = { flush: flushOpen };
})();
