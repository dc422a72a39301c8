// Undo / redo for the editor. Every step is replayed through the same endpoints as the original
// action, and moves between the stacks only when the server accepted it: on an error the message
// shows in #flash and both stacks stay as they were. A node re-created by undo gets a new id from
// the server; `alias` maps old ids to new ones so older steps still find it.
(function () {
  'use strict';
  const api = window.patchwireApi;
  if (!api) return;
  const { root, base, send, sendJson } = api;

  const undoStack = [];
  const redoStack = [];
  const alias = new Map();           // node id that no longer exists -> the id it was re-created with
  const baselines = new Map();       // node id -> the panel form's saved values (before a config edit)
  const LIMIT = 200;
  let queue = Promise.resolve();     // steps run one at a time, in order
  let replaying = 0;

  const current = (nodeId) => { while (alias.has(nodeId)) nodeId = alias.get(nodeId); return nodeId; };
  const resolveConn = (c) => ({ ...c, source: current(c.source), target: current(c.target) });

  function record(step) {
    if (replaying) return;
    undoStack.push(step);
    if (undoStack.length > LIMIT) undoStack.shift();
    redoStack.length = 0;
    refresh();
  }

  function refresh() {
    const undo = document.getElementById('undo-button');
    const redo = document.getElementById('redo-button');
    if (undo) undo.disabled = !undoStack.length;
    if (redo) redo.disabled = !redoStack.length;
    root.dataset.undo = String(undoStack.length);
    root.dataset.redo = String(redoStack.length);
  }

  // --- operations through the server, then the canvas ----------------------------------------
  async function exportDocument() {
    const response = await fetch(`${base}/export`, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (!response.ok) throw new Error(`export: HTTP ${response.status}`);
    return response.json();
  }

  // The nodes' rows as a workflow document: their config, settings, and every connection touching them.
  async function snapshot(nodeIds) {
    const doc = await exportDocument();
    const wanted = new Set(nodeIds);
    return {
      ...doc,
      nodes: doc.nodes.filter((n) => wanted.has(n.id)),
      connections: doc.connections.filter((c) => wanted.has(c.source) || wanted.has(c.target)),
    };
  }

  // POST /paste (a document, or the text as pasted); add the new nodes and connections to the
  // canvas; return old id -> new id.
  async function pasteDocument(doc, { dx = 0, dy = 0, attach = false } = {}) {
    const text = typeof doc === 'string' ? doc : JSON.stringify(doc);
    const response = await send('POST', `${base}/paste`, { document: text, dx, dy, attach: attach ? '1' : '' });
    const holder = document.createElement('template');
    holder.innerHTML = (await response.text()).trim();
    const meta = JSON.parse(holder.content.querySelector('.pw-pasted-meta').textContent);
    for (const el of holder.content.querySelectorAll('.pw-node')) api.addNodeFromHtml(el.outerHTML);
    for (const c of meta.connections) api.link(c, true);
    return meta.ids;
  }

  async function deleteNodes(nodeIds) {
    await sendJson(`${base}/nodes/delete`, { nodes: nodeIds });
    nodeIds.forEach(api.dropNode);
  }

  async function restoreNodes(doc) {
    const live = {
      ...doc,
      connections: doc.connections.map((c) => {
        const ids = new Set(doc.nodes.map((n) => n.id));
        return { ...c, source: ids.has(c.source) ? c.source : current(c.source),
                 target: ids.has(c.target) ? c.target : current(c.target) };
      }),
    };
    const ids = await pasteDocument(live, { attach: true });
    for (const [old, fresh] of Object.entries(ids)) alias.set(current(old), fresh);
  }

  async function savePositions(moves, which) {
    const positions = moves.map((m) => ({ node: current(m.nodeId), ...m[which], version: api.version(current(m.nodeId)) }));
    if (positions.length === 1) {
      await api.sendNode(positions[0].node, 'POST', `${base}/nodes/${positions[0].node}/position`,
        { x: positions[0].x, y: positions[0].y });
    } else {
      await sendJson(`${base}/positions`, { positions });
    }
    for (const p of positions) api.placeNode(p.node, p.x, p.y);
  }

  async function connect(c, on) {
    const live = resolveConn(c);
    await send('POST', `${base}/connections${on ? '' : '/delete'}`, live);
    api.link(live, on);
  }

  // Replays a panel form's values; the answer is the panel (plus its out-of-band title/ports).
  async function saveConfig(nodeId, values) {
    const id = current(nodeId);
    const response = await api.sendNode(id, 'POST', `${base}/nodes/${id}`, values);
    const html = await response.text();
    replaying++;
    try {
      await htmx.swap({ target: '#panel', swap: 'innerHTML', text: html, sourceElement: document.body });
    } finally { replaying--; }
    const trigger = response.headers.get('HX-Trigger');
    if (trigger) {
      for (const [name, detail] of Object.entries(JSON.parse(trigger))) {
        document.dispatchEvent(new CustomEvent(name, { detail }));
      }
    }
    baselines.set(id, values);
  }

  // --- step kinds: {undo, redo} ---------------------------------------------------------------
  const steps = {
    added: ({ nodeId, type, x, y }) => ({
      label: 'add node',
      undo: () => deleteNodes([current(nodeId)]),
      async redo() {
        const fresh = await api.createNode(type, x, y);  // announced while replaying: not recorded
        alias.set(current(nodeId), fresh);
      },
    }),
    removed: (doc) => ({
      label: doc.nodes.length > 1 ? `delete ${doc.nodes.length} nodes` : 'delete node',
      undo: () => restoreNodes(doc),
      redo: () => deleteNodes(doc.nodes.map((n) => current(n.id))),
    }),
    pasted: (doc, offset, ids) => {
      let created = Object.values(ids);
      return {
        label: 'paste',
        undo: () => deleteNodes(created.map(current)),
        async redo() {
          const fresh = await pasteDocument(doc, offset);
          const again = Object.keys(ids).map((old) => fresh[old]);
          created.forEach((old, i) => alias.set(current(old), again[i]));
          created = again;
        },
      };
    },
    moved: (moves) => ({
      label: 'move',
      undo: () => savePositions(moves, 'from'),
      redo: () => savePositions(moves, 'to'),
    }),
    connected: (c) => ({ label: 'connect', undo: () => connect(c, false), redo: () => connect(c, true) }),
    disconnected: (c) => ({ label: 'disconnect', undo: () => connect(c, true), redo: () => connect(c, false) }),
    configured: (nodeId, before, after) => ({
      label: 'edit settings',
      undo: () => saveConfig(nodeId, before),
      redo: () => saveConfig(nodeId, after),
    }),
  };

  function run(from, to) {
    queue = queue.then(async () => {
      const step = from[from.length - 1];
      if (!step) return;
      replaying++;
      try {
        await (from === undoStack ? step.undo() : step.redo());
        from.pop();
        to.push(step);
        root.dispatchEvent(new CustomEvent('pw:history', { detail: { done: from === undoStack ? 'undo' : 'redo', step: step.label } }));
      } catch (error) {
        // the message is in #flash (send shows it); the step stays where it was
        if (!document.getElementById('flash').textContent.trim()) {
          document.getElementById('flash').innerHTML =
            `<div class="alert alert-error" role="alert">Could not ${from === undoStack ? 'undo' : 'redo'} ${step.label}.</div>`;
        }
      } finally {
        replaying--;
        refresh();
      }
    });
    return queue;
  }

  const history = {
    undo: () => run(undoStack, redoStack),
    redo: () => run(redoStack, undoStack),
    record,
    steps,
    snapshot,
    pasteDocument,
    deleteNodes,
    current,
    get replaying() { return replaying > 0; },
    get sizes() { return { undo: undoStack.length, redo: redoStack.length }; },
  };
  window.patchwireHistory = history;

  // --- what the user does, once the server accepted it -----------------------------------------
  root.addEventListener('pw:node-added', (e) => record(steps.added(e.detail)));
  root.addEventListener('pw:node-moved', (e) => record(steps.moved(e.detail.moves)));
  root.addEventListener('pw:connected', (e) => record(steps.connected(e.detail)));
  root.addEventListener('pw:disconnected', (e) => record(steps.disconnected(e.detail)));

  // Deleting remembers the nodes first (config, settings, connections) so undo can restore them.
  api.deleteNodes = (nodeIds) => {
    const done = queue.then(async () => {
      const doc = await snapshot(nodeIds);
      await deleteNodes(nodeIds);
      record(steps.removed(doc));
    });
    queue = done.catch(() => {});
    return done;
  };

  // Config edits in the panel: the values of the form as saved before, and as saved after.
  const formValues = (form) => [...new FormData(form).entries()].filter(([, v]) => typeof v === 'string');
  document.addEventListener('htmx:after:swap', (e) => {
    const ctx = e.detail && e.detail.ctx;
    const form = document.querySelector('#panel form.node-form');
    if (replaying || !form || !ctx || !ctx.response || ctx.response.status !== 200) return;
    const nodeId = form.dataset.nodeId;
    const now = formValues(form);
    const before = baselines.get(nodeId);
    if (ctx.request && ctx.request.method === 'POST' && before && JSON.stringify(before) !== JSON.stringify(now)) {
      record(steps.configured(nodeId, before, now));
    }
    baselines.set(nodeId, now);
  });

  // Autosaves of the panel (editor-autosave.js) change the config without a swap. The saves of one
  // visit of a node's panel are one step (undo goes back to the values it opened with), not one per pause.
  root.addEventListener('pw:node-autosaved', (e) => {
    const { nodeId, values, form } = e.detail;
    const before = baselines.get(nodeId);
    const top = undoStack[undoStack.length - 1];
    if (!replaying && top && top.form === form && top.nodeId === nodeId && !redoStack.length) {
      undoStack[undoStack.length - 1] = { ...steps.configured(nodeId, top.before, values), form, nodeId, before: top.before };
    } else if (!replaying && before && JSON.stringify(before) !== JSON.stringify(values)) {
      record({ ...steps.configured(nodeId, before, values), form, nodeId, before });
    }
    baselines.set(nodeId, values);
  });

  // --- keyboard and toolbar ------------------------------------------------------------------------
  const typing = (el) => el && (el.closest('input, textarea, select, [contenteditable=""], [contenteditable="true"]'));
  document.addEventListener('keydown', (e) => {
    if (!(e.ctrlKey || e.metaKey) || e.altKey || typing(e.target)) return;
    const key = e.key.toLowerCase();
    if (key === 'z' && !e.shiftKey) { e.preventDefault(); history.undo(); }
    else if ((key === 'z' && e.shiftKey) || key === 'y') { e.preventDefault(); history.redo(); }
  });
  const undoButton = document.getElementById('undo-button');
  const redoButton = document.getElementById('redo-button');
  if (undoButton) undoButton.addEventListener('click', () => history.undo());
  if (redoButton) redoButton.addEventListener('click', () => history.redo());
  refresh();
})();
