// Keyboard and screen-reader access to the canvas: every node is focusable and named; the arrow
// keys move focus along connections; Shift+arrows move the focused node; Enter or Space selects it
// (opens its panel); the node panel gets a "Connect to…" form and a list of its connections with
// "Remove" buttons. Connections are made and removed through Drawflow, so editor.js saves them
// exactly as it saves the mouse's (and rolls them back when the server refuses).
(function () {
  'use strict';
  const api = window.patchwireCanvas;
  if (!api) return;
  const { editor } = api;
  const canvas = document.getElementById('canvas');
  const STEP = 20; // px a node moves per Shift+arrow

  (window.patchwireShortcuts = window.patchwireShortcuts || []).push(
    { group: 'Nodes', keys: 'Tab', description: 'Focus the next node on the canvas' },
    { group: 'Nodes', keys: ['→', '←'], description: 'Focus the next / previous connected node' },
    { group: 'Nodes', keys: ['↓', '↑'], description: 'Focus the next / previous node on the same level' },
    { group: 'Nodes', keys: ['Enter', 'Space'], description: 'Select the focused node and open its settings' },
    { group: 'Nodes', keys: 'Shift+Space', description: 'Add the focused node to the selection, or take it out' },
    { group: 'Nodes', keys: 'Shift+arrows', description: 'Move the focused node' },
  );

  const nodeEl = (dfId) => document.getElementById(`node-${dfId}`);
  const dfIdOf = (el) => el.id.slice('node-'.length);
  const data = () => editor.drawflow.drawflow[editor.module].data;

  function portName(el, side, index) {
    const inner = el.querySelector('.pw-node');
    const names = (inner && inner.dataset[side] ? inner.dataset[side].split(',') : []);
    return names[index] || `${side === 'inputs' ? 'input' : 'output'} ${index + 1}`;
  }

  function decorate(el) {
    if (el.dataset.pwKeyboard) return;
    el.dataset.pwKeyboard = '1';
    el.tabIndex = 0;
    if (!el.getAttribute('role')) el.setAttribute('role', 'option'); // an option of the nodes listbox (selection module)
    el.setAttribute('aria-roledescription', 'node');
    // its accessible name is its visible text (name, type, status, ports): no aria-label to drift from it
    el.removeAttribute('aria-label');
    el.querySelectorAll('.inputs .input').forEach((port, i) => {
      port.setAttribute('role', 'img');
      port.setAttribute('aria-label', `input port ${portName(el, 'inputs', i)}`);
    });
    el.querySelectorAll('.outputs .output').forEach((port, i) => {
      port.setAttribute('role', 'img');
      port.setAttribute('aria-label', `output port ${portName(el, 'outputs', i)}`);
    });
  }

  function decorateAll() {
    canvas.querySelectorAll('.drawflow-node').forEach(decorate);
    // wires are drawn for the eye; the node panel lists each node's connections in words
    canvas.querySelectorAll('svg.connection:not([aria-hidden])').forEach((svg) => svg.setAttribute('aria-hidden', 'true'));
  }
  // nodes are added later too (palette, paste, undo): decorate whatever appears
  new MutationObserver(decorateAll).observe(canvas, { childList: true, subtree: true });
  decorateAll();

  // --- moving focus along the graph -------------------------------------------------------------
  function neighbours(dfId, side) {
    const node = data()[dfId];
    if (!node) return [];
    const ports = side === 'outputs' ? node.outputs : node.inputs;
    const ids = [];
    for (const port of Object.values(ports)) {
      for (const c of port.connections) ids.push(String(c.node)); // the node at the other end
    }
    const byPosition = (a, b) => data()[a].pos_y - data()[b].pos_y || data()[a].pos_x - data()[b].pos_x;
    return [...new Set(ids)].filter((id) => data()[id]).sort(byPosition);
  }

  function level(dfId) {
    // siblings: the other successors of this node's predecessors, or, for a node without one,
    // the other nodes without one (e.g. triggers), top to bottom
    const parents = neighbours(dfId, 'inputs');
    let ids = parents.length ? [...new Set(parents.flatMap((p) => neighbours(p, 'outputs')))]
      : Object.keys(data()).filter((id) => !neighbours(id, 'inputs').length);
    ids = ids.sort((a, b) => data()[a].pos_y - data()[b].pos_y || data()[a].pos_x - data()[b].pos_x);
    return ids;
  }

  function focusNode(dfId) {
    const el = nodeEl(dfId);
    if (el) el.focus({ preventScroll: true });
    return !!el;
  }

  // A focused node (clicked, or reached with Tab) must not make the browser scroll the canvas box:
  // Drawflow pans with a transform, and a scrolled box would put every node off its coordinates.
  canvas.addEventListener('scroll', () => {
    if (canvas.scrollTop || canvas.scrollLeft) canvas.scrollTo(0, 0);
  });

  function select(el) {
    const dfId = dfIdOf(el);
    canvas.querySelectorAll('.drawflow-node.selected').forEach((n) => n.classList.remove('selected'));
    el.classList.add('selected');
    editor.node_selected = el;
    editor.dispatch('nodeSelected', dfId); // editor.js opens the node's panel
  }

  function move(el, dx, dy) {
    const dfId = dfIdOf(el);
    const node = data()[dfId];
    node.pos_x += dx;
    node.pos_y += dy;
    el.style.left = `${node.pos_x}px`;
    el.style.top = `${node.pos_y}px`;
    editor.updateConnectionNodes(el.id);
    editor.dispatch('nodeMoved', dfId); // editor.js saves the position (with the node's version)
  }

  canvas.addEventListener('keydown', (e) => {
    const el = e.target.closest && e.target.closest('.drawflow-node');
    if (!el || e.target !== el || e.ctrlKey || e.metaKey || e.altKey) return;
    const dfId = dfIdOf(el);
    if (e.shiftKey && e.key === ' ' && window.patchwireSelection) {
      window.patchwireSelection.toggle(el.dataset.nodeId); // multi-select without a mouse
    } else if (e.shiftKey && e.key.startsWith('Arrow')) {
      const [dx, dy] = { ArrowLeft: [-STEP, 0], ArrowRight: [STEP, 0], ArrowUp: [0, -STEP], ArrowDown: [0, STEP] }[e.key];
      move(el, dx, dy);
    } else if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
      const next = neighbours(dfId, e.key === 'ArrowRight' ? 'outputs' : 'inputs')[0];
      if (next) focusNode(next);
    } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      const ids = level(dfId);
      const at = ids.indexOf(dfId);
      const next = ids[at + (e.key === 'ArrowDown' ? 1 : -1)];
      if (next) focusNode(next);
    } else if (e.key === 'Enter' || e.key === ' ') {
      select(el);
    } else {
      return;
    }
    e.preventDefault();
    e.stopPropagation();
  });

  // --- "Connect to…" and the node's connections, in the node panel ------------------------------
  const panel = document.getElementById('panel');

  function nodeRows() {
    return Object.keys(data()).map((dfId) => {
      const el = nodeEl(dfId);
      return { dfId, row: api.rowOf(dfId), name: (el.querySelector('.pw-node-name') || {}).textContent || '', el };
    }).sort((a, b) => a.name.localeCompare(b.name));
  }

  function option(value, text) {
    const o = document.createElement('option');
    o.value = value;
    o.textContent = text;
    return o;
  }

  function field(labelText, control) {
    const wrap = document.createElement('div');
    wrap.className = 'field';
    const l = document.createElement('label');
    l.htmlFor = control.id;
    l.textContent = labelText;
    wrap.append(l, control);
    return wrap;
  }

  function select_(id, options) {
    const s = document.createElement('select');
    s.id = id;
    options.forEach((o) => s.append(o));
    return s;
  }

  function connectionsOf(dfId) {
    const node = data()[dfId];
    const out = [];
    for (const [cls, port] of Object.entries(node.outputs)) {
      for (const c of port.connections) out.push({ from: dfId, to: String(c.node), outCls: cls, inCls: c.output });
    }
    for (const [cls, port] of Object.entries(node.inputs)) {
      for (const c of port.connections) out.push({ from: String(c.node), to: dfId, outCls: c.input, inCls: cls });
    }
    return out;
  }

  function portLabel(dfId, side, cls) {
    const index = parseInt(cls.split('_')[1], 10) - 1;
    return portName(nodeEl(dfId), side, index);
  }

  function buildConnectSection(form) {
    const row = form.dataset.nodeId;
    const dfId = api.dfOf(row);
    if (!dfId || !data()[dfId] || form.parentElement.querySelector('.connect-section')) return;
    const me = nodeEl(dfId);
    const section = document.createElement('section');
    section.className = 'connect-section';
    section.setAttribute('aria-labelledby', `connect-title-${row}`);
    const title = document.createElement('h3');
    title.id = `connect-title-${row}`;
    title.textContent = 'Connections';
    section.append(title);

    const list = document.createElement('ul');
    list.className = 'connection-list';
    for (const c of connectionsOf(dfId)) {
      const li = document.createElement('li');
      const text = `${nodeEl(c.from).querySelector('.pw-node-name').textContent} (${portLabel(c.from, 'outputs', c.outCls)}) → `
        + `${nodeEl(c.to).querySelector('.pw-node-name').textContent} (${portLabel(c.to, 'inputs', c.inCls)})`;
      const span = document.createElement('span');
      span.textContent = text;
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = 'Remove';
      remove.setAttribute('aria-label', `Remove connection ${text}`);
      remove.addEventListener('click', () => {
        editor.removeSingleConnection(c.from, c.to, c.outCls, c.inCls); // editor.js saves the removal
        refresh(form);
      });
      li.append(span, ' ', remove);
      list.append(li);
    }
    if (!list.children.length) {
      const li = document.createElement('li');
      li.className = 'muted';
      li.textContent = 'Not connected.';
      list.append(li);
    }
    section.append(list);

    const outputs = Object.keys(data()[dfId].outputs);
    const targets = nodeRows().filter((n) => n.dfId !== dfId && Object.keys(data()[n.dfId].inputs).length);
    if (outputs.length && targets.length) {
      const connect = document.createElement('div');
      connect.className = 'connect-form';
      connect.setAttribute('role', 'group');
      connect.setAttribute('aria-label', 'Connect to another node');
      const from = select_(`connect-from-${row}`, outputs.map((cls) => option(cls, portLabel(dfId, 'outputs', cls))));
      const to = select_(`connect-to-${row}`, targets.map((n) => option(n.dfId, n.name)));
      const input = select_(`connect-input-${row}`, []);
      const fillInputs = () => {
        input.replaceChildren(...Object.keys(data()[to.value].inputs).map((cls) => option(cls, portLabel(to.value, 'inputs', cls))));
      };
      to.addEventListener('change', fillInputs);
      fillInputs();
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = 'Connect';
      button.addEventListener('click', () => {
        editor.addConnection(dfId, to.value, from.value, input.value); // editor.js saves it (or takes it back)
        refresh(form);
      });
      connect.append(field('From output', from), field('Connect to…', to), field('Input', input), button);
      section.append(connect);
    }
    form.after(section);
  }

  function refresh(form) {
    const old = form.parentElement && form.parentElement.querySelector('.connect-section');
    if (old) old.remove();
    buildConnectSection(form);
  }

  document.addEventListener('htmx:after:swap', () => {
    const form = panel.querySelector('form.node-form');
    if (form) buildConnectSection(form);
  });
  for (const name of ['connectionCreated', 'connectionRemoved', 'nodeRemoved']) {
    editor.on(name, () => {
      const form = panel.querySelector('form.node-form');
      if (form) refresh(form);
    });
  }
})();
