// Selection (shift-click, rectangle, Ctrl+A, Escape), deleting and duplicating the selection, and
// the clipboard: Ctrl+C copies the selected nodes as a workflow document (the export format),
// Ctrl+V pastes such a document (from any workflow, tab or text editor) through POST /paste.
(function () {
  'use strict';
  const api = window.patchwireApi;
  const history = window.patchwireHistory;
  if (!api || !history) return;
  const { editor, root } = api;
  const canvas = document.getElementById('canvas');
  const wrap = canvas.parentElement;
  const saveState = document.getElementById('save-state');
  const selectModeButton = document.getElementById('select-mode-button');
  const PASTE_OFFSET = 40;

  const selected = new Set();
  let selectMode = false;

  // The nodes are the options of a multi-select listbox: Drawflow's precanvas holds them (with their
  // wires, hidden from assistive technology, and the notes); the canvas around it holds the tools.
  editor.precanvas.setAttribute('role', 'listbox');
  editor.precanvas.setAttribute('aria-multiselectable', 'true');
  editor.precanvas.setAttribute('aria-label', 'Workflow nodes');

  function render() {
    for (const nodeId of [...selected]) if (!api.dfOf(nodeId)) selected.delete(nodeId);
    for (const el of canvas.querySelectorAll('.drawflow-node')) {
      const on = selected.has(el.dataset.nodeId);
      el.classList.toggle('pw-selected', on);
      el.setAttribute('role', 'option');
      el.setAttribute('aria-selected', String(on));
    }
    root.dataset.selected = String(selected.size);
  }

  function set(nodeIds) {
    selected.clear();
    for (const id of nodeIds) selected.add(id);
    render();
  }

  function clearDrawflowSelection() {
    for (const el of canvas.querySelectorAll('.drawflow-node.selected')) el.classList.remove('selected');
    editor.node_selected = null;
  }

  const selection = {
    ids: () => [...selected].filter((id) => api.dfOf(id)),
    set,
    clear() { clearDrawflowSelection(); set([]); },
    toggle(nodeId) { if (selected.has(nodeId)) selected.delete(nodeId); else selected.add(nodeId); render(); },
  };
  window.patchwireSelection = selection;

  // Drawflow's own single selection (a plain click) becomes the selection.
  editor.on('nodeSelected', (dfId) => set([api.nodeOf(dfId)]));
  editor.on('nodeUnselected', () => set([]));
  editor.on('connectionSelected', () => set([]));
  new MutationObserver(render).observe(editor.precanvas, { childList: true });

  // --- shift-click and the selection rectangle -------------------------------------------------
  const onPort = (el) => el.closest('.input, .output');
  wrap.addEventListener('mousedown', (e) => {
    if (e.button !== 0 || !canvas.contains(e.target)) return;
    const nodeEl = e.target.closest('.drawflow-node');
    if (nodeEl && e.shiftKey && !onPort(e.target)) {
      e.stopPropagation();               // Drawflow would select (and drag) the node alone
      e.preventDefault();
      selection.toggle(nodeEl.dataset.nodeId);
      return;
    }
    const empty = e.target === canvas || e.target === editor.precanvas;
    if (empty && (e.shiftKey || selectMode)) {
      e.stopPropagation();               // Drawflow would pan
      e.preventDefault();
      startRectangle(e);
    }
  }, true);

  function startRectangle(down) {
    const origin = canvas.getBoundingClientRect();
    const box = document.createElement('div');
    box.className = 'pw-marquee';
    box.setAttribute('aria-hidden', 'true');
    canvas.appendChild(box);
    const additive = down.shiftKey;
    const base = additive ? new Set(selected) : new Set();
    let rect = { left: down.clientX, top: down.clientY, right: down.clientX, bottom: down.clientY };

    function update(e) {
      rect = { left: Math.min(down.clientX, e.clientX), top: Math.min(down.clientY, e.clientY),
               right: Math.max(down.clientX, e.clientX), bottom: Math.max(down.clientY, e.clientY) };
      Object.assign(box.style, { left: `${rect.left - origin.x}px`, top: `${rect.top - origin.y}px`,
                                 width: `${rect.right - rect.left}px`, height: `${rect.bottom - rect.top}px` });
      const inside = api.nodeIds().filter((id) => {
        const r = api.element(id).getBoundingClientRect();
        return r.left < rect.right && r.right > rect.left && r.top < rect.bottom && r.bottom > rect.top;
      });
      set([...base, ...inside]);
    }
    function end(e) {
      update(e);
      box.remove();
      window.removeEventListener('mousemove', update);
      window.removeEventListener('mouseup', end);
    }
    if (!additive) clearDrawflowSelection();
    window.addEventListener('mousemove', update);
    window.addEventListener('mouseup', end);
  }

  function toggleSelectMode(on = !selectMode) {
    selectMode = on;
    canvas.classList.toggle('pw-select-mode', on);
    if (selectModeButton) selectModeButton.setAttribute('aria-pressed', String(on));
  }
  if (selectModeButton) selectModeButton.addEventListener('click', () => toggleSelectMode());

  // --- copy, paste, duplicate, delete --------------------------------------------------------------
  async function selectionDocument() {
    const ids = selection.ids();
    const doc = await history.snapshot(ids);
    const inside = new Set(ids);
    doc.connections = doc.connections.filter((c) => inside.has(c.source) && inside.has(c.target));
    return doc;
  }

  async function writeClipboard(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try { await navigator.clipboard.writeText(text); return; } catch (error) { /* fall back below */ }
    }
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    Object.assign(area.style, { position: 'fixed', top: '0', left: '0', opacity: '0' });
    document.body.appendChild(area);
    area.select();
    const copied = document.execCommand('copy');
    area.remove();
    if (!copied) throw new Error('copy refused');
  }

  function status(text) { saveState.textContent = text; }
  const plural = (n) => `${n} node${n === 1 ? '' : 's'}`;

  async function copy() {
    const ids = selection.ids();
    if (!ids.length) return;
    try {
      await writeClipboard(JSON.stringify(await selectionDocument(), null, 2));
      status(`Copied ${plural(ids.length)}`);
    } catch (error) {
      status('Not copied: the browser refused access to the clipboard');
    }
  }

  // One undo step: the whole paste (or duplicate) is removed, and pasted again by redo.
  async function pasteText(text) {
    const offset = { dx: PASTE_OFFSET, dy: PASTE_OFFSET };
    // The text goes to the server as it is: the server checks it and says precisely what is wrong.
    const ids = await history.pasteDocument(text, offset);
    history.record(history.steps.pasted(text, offset, ids));
    selection.clear();
    set(Object.values(ids));
    status(`Pasted ${plural(Object.keys(ids).length)}`);
  }

  async function duplicate() {
    if (!selection.ids().length) return;
    await pasteText(JSON.stringify(await selectionDocument()));
  }

  async function removeSelection() {
    const ids = selection.ids();
    if (!ids.length) return;
    await api.deleteNodes(ids);
    set([]);
  }

  // Capture phase on window: runs before Drawflow's own Delete handling on document.
  const typing = (el) => el && el.closest && el.closest('input, textarea, select, [contenteditable=""], [contenteditable="true"]');
  const ignore = () => {};
  window.addEventListener('keydown', (e) => {
    if (typing(e.target) || e.altKey) return;
    const ctrl = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    if ((e.key === 'Delete' || e.key === 'Backspace') && !ctrl && editor.connection_selected) {
      // a selected wire: Drawflow removes it, editor.js saves that as a disconnect. (Drawflow's
      // own Delete handling listens on the canvas, which never has the keyboard focus.)
      e.preventDefault();
      e.stopPropagation();
      editor.removeConnection();
    } else if ((e.key === 'Delete' || e.key === 'Backspace') && !ctrl && selection.ids().length) {
      e.preventDefault();
      e.stopPropagation();
      removeSelection().catch(ignore);
    } else if (e.key === 'Escape') {
      selection.clear();
      toggleSelectMode(false);
    } else if (ctrl && key === 'a') {
      e.preventDefault();
      set(api.nodeIds());
    } else if (ctrl && key === 'd') {
      e.preventDefault();
      duplicate().catch(ignore);
    } else if (ctrl && key === 'c' && !String(window.getSelection())) {
      e.preventDefault();
      copy();
    } else if (ctrl && key === 'v' && navigator.clipboard && window.isSecureContext) {
      e.preventDefault();      // read it ourselves (no 'paste' event follows)
      navigator.clipboard.readText().then(pasteText, () => status('Not pasted: the browser refused access to the clipboard'))
        .catch(ignore);
    }
  }, true);

  // Without the async clipboard (plain http on another host), the browser's own paste event.
  document.addEventListener('paste', (e) => {
    if (typing(e.target)) return;
    e.preventDefault();
    pasteText(e.clipboardData.getData('text/plain')).catch(ignore);
  });

  root.addEventListener('pw:history', render);
  render();
})();
