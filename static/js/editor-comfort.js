// Editor comfort: palette search, zoom and the overview map, sticky notes, inline rename of
// nodes, and the keyboard-shortcuts dialog. It talks to the canvas only through
// window.patchwireCanvas (set by editor.js) and never edits Drawflow's data itself.
(function () {
  'use strict';
  const api = window.patchwireCanvas;
  if (!api) return;
  const { editor, base, send } = api;
  const canvas = document.getElementById('canvas');

  // --- the shortcut list: every editor module adds its own entries ---------------------------
  // {keys: 'Ctrl+Z' or ['Ctrl+Shift+Z', 'Ctrl+Y'], description, group}. Entries with the same
  // keys replace earlier ones, so a module may restate a shortcut listed here in advance.
  const shortcuts = window.patchwireShortcuts = window.patchwireShortcuts || [];
  shortcuts.push(
    { group: 'General', keys: '?', description: 'Show this list of shortcuts' },
    { group: 'General', keys: 'Escape', description: 'Close a dialog, cancel a rename or a note edit' },
    { group: 'Palette', keys: '/', description: 'Search node types' },
    { group: 'Palette', keys: ['↓', '↑'], description: 'Move through the matching node types' },
    { group: 'Palette', keys: 'Enter', description: 'Add the focused node type next to the selected node' },
    { group: 'Canvas', keys: '1', description: 'Zoom to fit the whole workflow' },
    { group: 'Canvas', keys: ['+', '−'], description: 'Zoom in / out (also Ctrl + mouse wheel)' },
    { group: 'Canvas', keys: '0', description: 'Zoom to 100%' },
    { group: 'Nodes', keys: 'F2', description: 'Rename the selected node (or double-click its name)' },
    { group: 'Nodes', keys: 'Delete', description: 'Delete the selected node or connection' },
    { group: 'Notes', keys: 'N', description: 'Add a sticky note in the middle of the view' },
    { group: 'Notes', keys: 'Enter', description: 'Edit the focused note (or double-click it)' },
    { group: 'Notes', keys: 'Ctrl+Enter', description: 'Save the note you are writing (leaving the field saves too)' },
    { group: 'Notes', keys: 'Delete', description: 'Delete the focused note' },
    // Implemented by the selection / history module; listed here so the dialog is complete.
    { group: 'Edit', keys: 'Ctrl+Z', description: 'Undo' },
    { group: 'Edit', keys: ['Ctrl+Shift+Z', 'Ctrl+Y'], description: 'Redo' },
    { group: 'Edit', keys: 'Ctrl+A', description: 'Select all nodes' },
    { group: 'Edit', keys: 'Ctrl+C', description: 'Copy the selected nodes' },
    { group: 'Edit', keys: 'Ctrl+V', description: 'Paste' },
    { group: 'Edit', keys: 'Ctrl+D', description: 'Duplicate the selected nodes' },
  );

  const isTyping = (el) => !!(el && el.closest && el.closest('input, textarea, select, [contenteditable]'));
  const fromHtml = (html) => {
    const holder = document.createElement('template');
    holder.innerHTML = html.trim();
    return holder.content;
  };

  // --- palette search ---------------------------------------------------------------------------
  const search = document.getElementById('palette-search');
  const paletteEmpty = document.getElementById('palette-empty');
  const paletteItems = [...document.querySelectorAll('.palette-item')];
  const visibleItems = () => paletteItems.filter((item) => !item.hidden);

  function filterPalette() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const item of paletteItems) item.hidden = !words.every((w) => item.dataset.search.includes(w));
    for (const group of document.querySelectorAll('.palette-group')) {
      group.hidden = !group.querySelector('.palette-item:not([hidden])');
    }
    paletteEmpty.hidden = visibleItems().length > 0;
  }

  search.addEventListener('input', filterPalette);
  search.addEventListener('keydown', (e) => {
    const first = visibleItems()[0];
    if (e.key === 'ArrowDown' && first) {
      e.preventDefault();
      first.focus();
    } else if (e.key === 'Enter' && first) {
      e.preventDefault();
      api.addNodeOfType(first.dataset.type).catch(() => {});
    } else if (e.key === 'Escape') {
      e.preventDefault();
      if (search.value) { search.value = ''; filterPalette(); } else { canvas.focus(); }
    }
  });
  for (const item of paletteItems) {
    item.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
      e.preventDefault();
      const shown = visibleItems();
      const index = shown.indexOf(item) + (e.key === 'ArrowDown' ? 1 : -1);
      if (index < 0) search.focus(); else if (shown[index]) shown[index].focus();
    });
  }

  // --- view: zoom, pan, fit ----------------------------------------------------------------------
  editor.zoom_min = 0.25;
  const zoomLevel = document.getElementById('zoom-level');

  function setView(zoom, x, y) {
    editor.zoom = zoom;
    editor.zoom_last_value = zoom;
    editor.canvas_x = x;
    editor.canvas_y = y;
    editor.precanvas.style.transform = `translate(${x}px, ${y}px) scale(${zoom})`;
    editor.dispatch('zoom', zoom);
    editor.dispatch('translate', { x, y });
  }

  // Pan so that canvas point (x, y) sits in the middle of the visible canvas.
  function centerOn(x, y) {
    const view = canvas.getBoundingClientRect(), pc = editor.precanvas.getBoundingClientRect();
    const dx = view.x + view.width / 2 - (pc.x + x * editor.zoom);
    const dy = view.y + view.height / 2 - (pc.y + y * editor.zoom);
    setView(editor.zoom, editor.canvas_x + dx, editor.canvas_y + dy);
  }

  // Canvas-coordinate boxes of every node and note.
  function contentBoxes() {
    const boxes = [];
    for (const node of Object.values(editor.drawflow.drawflow.Home.data)) {
      const el = document.getElementById(`node-${node.id}`);
      boxes.push({ kind: 'node', x: node.pos_x, y: node.pos_y, w: el ? el.offsetWidth : 190, h: el ? el.offsetHeight : 60 });
    }
    for (const note of notes.values()) {
      const d = note.dataset;
      boxes.push({ kind: 'note', x: +d.x, y: +d.y, w: +d.width, h: +d.height });
    }
    return boxes;
  }

  function bounds(boxes) {
    if (!boxes.length) return null;
    return {
      minX: Math.min(...boxes.map((b) => b.x)), minY: Math.min(...boxes.map((b) => b.y)),
      maxX: Math.max(...boxes.map((b) => b.x + b.w)), maxY: Math.max(...boxes.map((b) => b.y + b.h)),
    };
  }

  function visibleArea() {
    const view = canvas.getBoundingClientRect(), pc = editor.precanvas.getBoundingClientRect();
    return { x: (view.x - pc.x) / editor.zoom, y: (view.y - pc.y) / editor.zoom,
             w: view.width / editor.zoom, h: view.height / editor.zoom };
  }

  function zoomToFit() {
    const b = bounds(contentBoxes());
    if (!b) { setView(1, 0, 0); return; }
    const pad = 40;
    const zoom = Math.min(1, Math.max(editor.zoom_min,
      Math.min(canvas.clientWidth / (b.maxX - b.minX + 2 * pad), canvas.clientHeight / (b.maxY - b.minY + 2 * pad))));
    setView(zoom, editor.canvas_x, editor.canvas_y);
    centerOn((b.minX + b.maxX) / 2, (b.minY + b.maxY) / 2);
  }

  editor.on('zoom', (zoom) => { zoomLevel.textContent = `${Math.round(zoom * 100)}%`; });

  // --- the overview map ---------------------------------------------------------------------------
  const minimap = document.getElementById('minimap');
  const MAP_W = 200, MAP_H = 130, SVG = 'http://www.w3.org/2000/svg';
  let mapping = null;        // {minX, minY, scale, ox, oy}: canvas -> map
  let mapDragging = false;   // the mapping stays fixed while the person drags in the map
  let mapQueued = false;

  function computeMapping(boxes, area) {
    const b = bounds([...boxes, area]);
    const pad = 20;
    const w = b.maxX - b.minX + 2 * pad, h = b.maxY - b.minY + 2 * pad;
    const scale = Math.min(MAP_W / w, MAP_H / h);
    return { minX: b.minX - pad, minY: b.minY - pad, scale,
             ox: (MAP_W - w * scale) / 2, oy: (MAP_H - h * scale) / 2 };
  }

  function placeRect(r, box, cls) {
    const m = mapping;
    r.setAttribute('class', cls);
    r.setAttribute('x', (m.ox + (box.x - m.minX) * m.scale).toFixed(1));
    r.setAttribute('y', (m.oy + (box.y - m.minY) * m.scale).toFixed(1));
    r.setAttribute('width', Math.max(1, box.w * m.scale).toFixed(1));
    r.setAttribute('height', Math.max(1, box.h * m.scale).toFixed(1));
  }

  function drawMinimap() {
    mapQueued = false;
    const boxes = contentBoxes(), area = visibleArea();
    if (!mapDragging || !mapping) mapping = computeMapping(boxes, area);
    const shapes = [...boxes.map((b) => [b, `pw-mini-${b.kind}`]), [area, 'pw-mini-view']];
    while (minimap.children.length < shapes.length) minimap.appendChild(document.createElementNS(SVG, 'rect'));
    while (minimap.children.length > shapes.length) minimap.lastChild.remove();
    shapes.forEach(([box, cls], i) => placeRect(minimap.children[i], box, cls));
    minimap.dataset.zoom = editor.zoom.toFixed(2); // what the map shows (tests wait on it)
  }

  function refreshMinimap() {
    if (mapQueued) return;
    mapQueued = true;
    requestAnimationFrame(drawMinimap);
  }

  function panFromMap(e) {
    const r = minimap.getBoundingClientRect(), m = mapping;
    const mx = (e.clientX - r.x) * (MAP_W / r.width), my = (e.clientY - r.y) * (MAP_H / r.height);
    centerOn(m.minX + (mx - m.ox) / m.scale, m.minY + (my - m.oy) / m.scale);
  }

  minimap.addEventListener('pointerdown', (e) => {
    e.preventDefault();
    mapDragging = true;
    minimap.setPointerCapture(e.pointerId);
    panFromMap(e);
  });
  minimap.addEventListener('pointermove', (e) => { if (mapDragging) panFromMap(e); });
  const endMapDrag = () => { mapDragging = false; refreshMinimap(); };
  minimap.addEventListener('pointerup', endMapDrag);
  minimap.addEventListener('pointercancel', endMapDrag);

  for (const name of ['nodeCreated', 'nodeRemoved', 'nodeMoved', 'mouseMove', 'translate', 'zoom', 'import']) {
    editor.on(name, refreshMinimap);
  }
  new ResizeObserver(refreshMinimap).observe(canvas);

  // The floating tools are not part of the drawing: Drawflow must not pan or unselect on them.
  for (const el of document.querySelectorAll('.pw-canvas-tools, #minimap')) {
    el.addEventListener('mousedown', (e) => e.stopPropagation());
    el.addEventListener('dblclick', (e) => e.stopPropagation());
  }

  // --- sticky notes --------------------------------------------------------------------------------
  const notes = new Map(); // note id -> element (inside Drawflow's precanvas: pans and zooms with it)

  function placeNote(el) {
    const d = el.dataset;
    Object.assign(el.style, { left: `${d.x}px`, top: `${d.y}px`, width: `${d.width}px`, height: `${d.height}px` });
  }

  function mountNote(html) {
    const el = fromHtml(html).firstElementChild;
    placeNote(el);
    wireNote(el);
    const old = notes.get(el.dataset.noteId);
    if (old && old.isConnected) old.replaceWith(el); else editor.precanvas.appendChild(el);
    notes.set(el.dataset.noteId, el);
    refreshMinimap();
    return el;
  }

  async function loadNotes() {
    const response = await fetch(`${base}/notes/`, { credentials: 'same-origin', headers: { 'HX-Request': 'true' } });
    if (!response.ok) return;
    for (const el of fromHtml(await response.text()).querySelectorAll('.pw-note')) mountNote(el.outerHTML);
  }

  // Drawflow's import() empties the precanvas: put the notes back.
  editor.on('import', () => { for (const el of notes.values()) editor.precanvas.appendChild(el); });

  async function addNote() {
    const view = canvas.getBoundingClientRect();
    const p = api.clientToCanvas(view.x + view.width / 2, view.y + view.height / 2);
    const response = await send('POST', `${base}/notes/`,
      { text: '', x: Math.round(p.x - 120), y: Math.round(p.y - 80), width: 240, height: 160 });
    editNote(mountNote(await response.text()));
  }

  async function deleteNote(el) {
    await send('DELETE', `${base}/notes/${el.dataset.noteId}`);
    notes.delete(el.dataset.noteId);
    el.remove();
    refreshMinimap();
    canvas.focus();
  }

  function saveGeometry(el) {
    const d = el.dataset;
    send('POST', `${base}/notes/${d.noteId}/geometry`, { x: d.x, y: d.y, width: d.width, height: d.height })
      .catch(() => {});
  }

  function editNote(el) {
    if (el.querySelector('.pw-note-input')) return;
    const body = el.querySelector('.pw-note-body');
    const field = document.createElement('textarea');
    field.className = 'pw-note-input';
    field.value = el.dataset.text;
    field.setAttribute('aria-label', 'Note text (Markdown). Ctrl+Enter saves, Escape cancels.');
    field.placeholder = 'Markdown: **bold**, _italic_, - lists, [links](https://…)';
    body.hidden = true;
    body.after(field);
    field.focus();
    let busy = false;

    async function finish(save) {
      if (busy || !field.isConnected) return;
      busy = true; // removing the focused field fires blur: that must not save
      if (!save || field.value === el.dataset.text) {
        field.remove();
        body.hidden = false;
        el.focus();
        return;
      }
      try {
        const response = await send('POST', `${base}/notes/${el.dataset.noteId}`, { text: field.value });
        mountNote(await response.text()).focus();
      } catch (error) {
        busy = false; // not saved (the message is in #flash): keep what was typed
      }
    }

    field.addEventListener('keydown', (e) => {
      e.stopPropagation(); // Drawflow would delete the selected node on Delete
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); finish(true); }
      if (e.key === 'Escape') { e.preventDefault(); finish(false); }
    });
    field.addEventListener('blur', () => finish(true));
  }

  // Move (by the head) or resize (by the corner) with the pointer; saved once, on release.
  function dragNote(el, e, resize) {
    e.preventDefault();
    const d = el.dataset, start = { cx: e.clientX, cy: e.clientY, x: +d.x, y: +d.y, w: +d.width, h: +d.height };
    let moved = false;
    const target = e.currentTarget;
    target.setPointerCapture(e.pointerId);
    const onMove = (ev) => {
      const dx = (ev.clientX - start.cx) / editor.zoom, dy = (ev.clientY - start.cy) / editor.zoom;
      moved = moved || Math.abs(dx) + Math.abs(dy) > 0;
      if (resize) {
        d.width = Math.round(Math.min(2000, Math.max(120, start.w + dx)));
        d.height = Math.round(Math.min(2000, Math.max(60, start.h + dy)));
      } else {
        d.x = Math.round(start.x + dx);
        d.y = Math.round(start.y + dy);
      }
      placeNote(el);
      refreshMinimap();
    };
    const onUp = () => {
      target.removeEventListener('pointermove', onMove);
      target.removeEventListener('pointerup', onUp);
      target.removeEventListener('pointercancel', onUp);
      if (moved) saveGeometry(el);
    };
    target.addEventListener('pointermove', onMove);
    target.addEventListener('pointerup', onUp);
    target.addEventListener('pointercancel', onUp);
  }

  function wireNote(el) {
    // Drawflow handles mousedown on its container (pan, select, the Delete key's target): not on notes.
    el.addEventListener('mousedown', (e) => e.stopPropagation());
    el.addEventListener('dblclick', (e) => {
      e.stopPropagation();
      if (!e.target.closest('button, .pw-note-input')) editNote(el);
    });
    el.querySelector('.pw-note-head').addEventListener('pointerdown', (e) => {
      if (e.button === 0 && !e.target.closest('button')) dragNote(el, e, false);
    });
    el.querySelector('.pw-note-resize').addEventListener('pointerdown', (e) => {
      if (e.button === 0) dragNote(el, e, true);
    });
    el.querySelector('.pw-note-edit').addEventListener('click', () => editNote(el));
    el.querySelector('.pw-note-delete').addEventListener('click', () => deleteNote(el).catch(() => {}));
    el.addEventListener('keydown', (e) => {
      if (e.target !== el) return;
      if (e.key === 'Enter') { e.preventDefault(); e.stopPropagation(); editNote(el); }
      if (e.key === 'Delete' || e.key === 'Backspace') { e.preventDefault(); e.stopPropagation(); deleteNote(el).catch(() => {}); }
    });
  }

  // --- inline rename of nodes ---------------------------------------------------------------------
  // Renaming changes how expressions address the node (nodes["Name"]): see docs/editor.md.
  function renameNode(nodeEl) {
    const nodeId = nodeEl.dataset.nodeId;
    const title = () => document.getElementById(`title-${nodeId}`);
    if (!nodeId || !title() || nodeEl.querySelector('.pw-rename')) return;
    const old = title().textContent;
    const field = document.createElement('input');
    field.type = 'text';
    field.className = 'pw-rename';
    field.value = old;
    field.maxLength = 200;
    field.setAttribute('aria-label', 'Node name (Enter saves, Escape cancels)');
    title().hidden = true;
    title().after(field);
    field.focus();
    field.select();
    let done = false;

    async function finish(save) {
      if (done) return;
      done = true;
      const name = field.value;
      field.remove();
      title().hidden = false;
      canvas.focus();
      if (!save || name.trim() === old) return;
      try {
        // through sendNode: it carries the node's version (a stale tab gets a 409, not an overwrite)
        const response = await api.sendNode(nodeId, 'POST', `${base}/nodes/${nodeId}/name`, { name });
        const saved = fromHtml(await response.text()).firstElementChild.textContent;
        title().textContent = saved;
        const panelName = document.querySelector(`#panel .node-form[data-node-id="${nodeId}"] #node-name`);
        if (panelName) panelName.value = saved; // so saving the open form does not put the old name back
      } catch (error) {
        // refused (a duplicate name, …): #flash says why; the canvas keeps the old name
      }
    }

    field.addEventListener('keydown', (e) => {
      e.stopPropagation(); // Drawflow would delete the selected node on Delete / Backspace
      if (e.key === 'Enter') { e.preventDefault(); finish(true); }
      if (e.key === 'Escape') { e.preventDefault(); finish(false); }
    });
    field.addEventListener('mousedown', (e) => e.stopPropagation());
    field.addEventListener('blur', () => finish(true));
  }

  canvas.addEventListener('dblclick', (e) => {
    const name = e.target.closest('.pw-node-name');
    if (name) renameNode(name.closest('.drawflow-node'));
  });

  // --- keyboard shortcuts dialog ---------------------------------------------------------------------
  const dialog = document.getElementById('shortcuts-dialog');
  const list = document.getElementById('shortcuts-list');
  let returnFocus = null;

  function keyCaps(keys) {
    const cell = document.createElement('td');
    (Array.isArray(keys) ? keys : [keys]).forEach((combo, i) => {
      if (i) cell.append(' or ');
      combo.split('+').forEach((key, j) => {
        if (j) cell.append('+');
        const kbd = document.createElement('kbd');
        kbd.textContent = key;
        cell.append(kbd);
      });
    });
    return cell;
  }

  function renderShortcuts() {
    const byKeys = new Map();
    for (const s of window.patchwireShortcuts) byKeys.set(`${s.group}|${[].concat(s.keys).join(',')}`, s);
    const groups = new Map();
    for (const s of byKeys.values()) {
      if (!groups.has(s.group)) groups.set(s.group, []);
      groups.get(s.group).push(s);
    }
    list.replaceChildren(...[...groups].map(([group, items]) => {
      const table = document.createElement('table');
      table.className = 'pw-shortcuts';
      table.createCaption().textContent = group;
      for (const s of items) {
        const row = table.insertRow();
        row.append(keyCaps(s.keys));
        row.insertCell().textContent = s.description;
      }
      return table;
    }));
  }

  function openShortcuts() {
    if (dialog.open) return;
    returnFocus = document.activeElement;
    renderShortcuts();
    dialog.showModal();
    dialog.querySelector('.pw-dialog-close').focus();
  }

  dialog.querySelector('.pw-dialog-close').addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => { if (returnFocus && returnFocus.isConnected) returnFocus.focus(); });
  dialog.addEventListener('click', (e) => { if (e.target === dialog) dialog.close(); }); // the backdrop
  dialog.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { e.preventDefault(); dialog.close(); return; }
    if (e.key !== 'Tab') return;
    const focusable = [...dialog.querySelectorAll('button, [href], input, [tabindex]:not([tabindex="-1"])')];
    const first = focusable[0], last = focusable[focusable.length - 1];
    if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
    else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
  });

  // --- toolbar buttons and single-key shortcuts ---------------------------------------------------------
  const actions = {
    'zoom-in': () => editor.zoom_in(),
    'zoom-out': () => editor.zoom_out(),
    'zoom-reset': () => editor.zoom_reset(),
    'zoom-fit': zoomToFit,
    'add-note': () => addNote().catch(() => {}),
    shortcuts: openShortcuts,
    search: () => { search.focus(); search.select(); },
    rename: () => {
      const node = document.activeElement && document.activeElement.closest
        && document.activeElement.closest('.drawflow-node') || document.querySelector('#canvas .drawflow-node.selected');
      if (node) renameNode(node);
    },
  };
  const KEYS = { '?': 'shortcuts', '/': 'search', F2: 'rename', n: 'add-note', N: 'add-note', 1: 'zoom-fit',
                 '+': 'zoom-in', '=': 'zoom-in', '-': 'zoom-out', 0: 'zoom-reset' };

  document.querySelector('.pw-canvas-tools').addEventListener('click', (e) => {
    const button = e.target.closest('button[data-action]');
    if (button) actions[button.dataset.action]();
  });

  document.addEventListener('keydown', (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || dialog.open || isTyping(e.target)) return;
    const action = KEYS[e.key];
    if (!action) return;
    e.preventDefault();
    actions[action]();
  });

  loadNotes().finally(refreshMinimap);
})();
