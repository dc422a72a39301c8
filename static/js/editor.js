// The canvas adapter: Drawflow stays behind this file. Every change the user makes on the
// canvas is saved as it happens as node / connection rows; the server answers with HTML.

// Every wire leaves its output port horizontally for WIRE_LEAD px before it bends (and reaches its input
// port the same way), so the port it leaves is never in doubt: a wire from If's "true" port heading down
// clears the "false" port's box (right of it) before it turns. Drawflow calls this for every wire it
// draws (this.createCurvature), including the one following the mouse.
const WIRE_LEAD = 24;
const WIRE_MIN_LEAD = 12;
function routeWire(startX, startY, endX, endY, curvature) {
  'use strict';
  // Nodes close side by side (less than two leads apart): a right-angled step halfway, never a loop back.
  const gap = endX - startX;
  const close = gap > 0 && gap < 2 * WIRE_LEAD;
  const lead = close ? Math.max(WIRE_MIN_LEAD, gap / 2) : WIRE_LEAD;
  const fromX = startX + lead;
  const toX = endX - lead;
  const bend = close ? 0 : Math.max(WIRE_LEAD, Math.abs(toX - fromX) * curvature);
  return ` M ${startX} ${startY} L ${fromX} ${startY} C ${fromX + bend} ${startY} ${toX - bend} ${endY} ${toX} ${endY}`
    + ` L ${endX} ${endY}`;
}

// Drawflow's own geometry (updateConnectionNodes), with every layout read before any write.
function drawWires(editor, canvas) {
  'use strict';
  const origin = editor.precanvas.getBoundingClientRect();
  const centre = (port) => {
    const r = port.getBoundingClientRect();
    return [port.offsetWidth / 2 + (r.x - origin.x) / editor.zoom, port.offsetHeight / 2 + (r.y - origin.y) / editor.zoom];
  };
  const wires = [...canvas.querySelectorAll('svg.connection')].map((svg) => {
    const [, input, output, outClass, inClass] = svg.classList;
    const from = centre(document.getElementById(output.slice(9)).querySelector(`.${outClass}`));
    const to = centre(document.getElementById(input.slice(8)).querySelector(`.${inClass}`));
    return [svg.firstElementChild, editor.createCurvature(...from, ...to, editor.curvature, 'openclose')];
  });
  for (const [path, d] of wires) path.setAttributeNS(null, 'd', d);
}
(function () {
  'use strict';
  const root = document.getElementById('editor-root');
  if (!root) return;

  const workflowId = root.dataset.workflowId;
  const base = `/workflows/${workflowId}`;
  const csrf = document.querySelector('meta[name=csrf-token]').content;
  const nodeTypes = JSON.parse(document.getElementById('node-types').textContent);
  const canvas = document.getElementById('canvas');
  const saveState = document.getElementById('save-state');
  const flash = document.getElementById('flash');

  const editor = new Drawflow(canvas);
  editor.createCurvature = routeWire;
  editor.reroute = false;
  editor.draggable_inputs = false;
  editor.start();
  window.patchwireEditor = editor; // for tests and debugging

  const dfToNode = new Map();   // Drawflow id (string) -> node row id
  const nodeToDf = new Map();   // node row id -> Drawflow id (string)
  const portsOf = new Map();    // node row id -> {inputs: [names], outputs: [names]}
  const placed = new Map();     // node row id -> {x, y} as last saved (the "from" of a move)
  let quiet = 0;                // > 0 while we change the canvas ourselves (no saving back)
  // Optimistic concurrency: every node row has a version; a write sends the version this tab saw and
  // the server refuses (409) one that another tab or person has overtaken. Writes of one node are sent
  // one after another, so this tab's own writes always carry the version its previous write returned.
  const versions = new Map();   // node row id -> version this tab last saw
  const pending = new Map();    // node row id -> promise of the write in flight

  // Other editor modules (history, selection, layout) listen to these after the server accepted a change.
  function announce(name, detail) { root.dispatchEvent(new CustomEvent(name, { detail })); }

  // Drawflow draws a wire once, from the port positions of that moment. A node that grows or
  // shrinks later (a status badge, a longer name) would leave its wires behind: redraw them.
  // The first report of each node is its initial size: its wires were just drawn for it, skip it.
  const measured = new WeakSet();
  const resized = new ResizeObserver((entries) => {
    for (const entry of entries) {
      if (!measured.has(entry.target)) { measured.add(entry.target); continue; }
      if (entry.target.isConnected) editor.updateConnectionNodes(entry.target.id);
    }
  });

  function setState(text) { saveState.textContent = text; }

  async function send(method, url, data, json) {
    setState('Saving…');
    const headers = { 'X-CSRFToken': csrf, 'HX-Request': 'true', 'Accept': 'text/html' };
    if (json !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(url, {
      method,
      credentials: 'same-origin',
      headers,
      body: json !== undefined ? json : (data ? new URLSearchParams(data) : undefined),
    });
    if (response.status === 401 && response.headers.get('HX-Redirect')) {
      window.location.assign(response.headers.get('HX-Redirect')); // the session ended: log in again
    }
    if (!response.ok) {
      flash.innerHTML = await response.text();
      setState('Not saved');
      const error = new Error(`HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    flash.innerHTML = '';
    setState('Saved');
    learnVersions(url, response);
    return response;
  }

  // Every answer about nodes says their versions now: one node's in X-Node-Version (for the node in
  // the URL), many in X-Node-Versions ({id: version}). This tab's next write of them carries those.
  function learnVersions(url, response) {
    const one = response.headers.get('X-Node-Version');
    const match = one && url.match(/\/nodes\/([0-9a-f]+)(?:[/?]|$)/);
    if (match) versions.set(match[1], parseInt(one, 10));
    const many = response.headers.get('X-Node-Versions');
    if (many) for (const [id, v] of Object.entries(JSON.parse(many))) versions.set(id, v);
  }

  function noteVersion(nodeId, response) {
    const version = response && response.headers.get('X-Node-Version');
    if (version) versions.set(nodeId, parseInt(version, 10));
  }

  // One node's writes run one after another: `work(version)` starts when the previous one is done and
  // gets the version it returned; the answer's X-Node-Version is the version for the next one.
  function queueNode(nodeId, work) {
    const previous = pending.get(nodeId) || Promise.resolve();
    const write = previous.catch(() => {}).then(async () => {
      const response = await work(versions.get(nodeId));
      noteVersion(nodeId, response);
      return response;
    });
    pending.set(nodeId, write);
    write.finally(() => { if (pending.get(nodeId) === write) pending.delete(nodeId); }).catch(() => {});
    return write;
  }

  function sendNode(nodeId, method, url, data) {
    return queueNode(nodeId, (version) => {
      let target = url;
      let body = data;
      if (version !== undefined) {
        if (method === 'DELETE') {
          target += `?version=${version}`;
        } else {
          // data: an object, or the [name, value] pairs of a form (fields may repeat)
          body = new URLSearchParams(data instanceof URLSearchParams || Array.isArray(data) ? data : data || {});
          body.set('version', String(version));
        }
      }
      return send(method, target, body);
    });
  }

  // The node form in the side panel saves itself as the user types (editor-autosave.js), through queueNode.
  flash.addEventListener('click', (e) => {
    if (e.target.closest('[data-pw-action="reload"]')) window.location.reload();
  });

  // Drawflow numbers ports (output_1, input_1, …); nodes name them (main, true, false, error, …).
  function portName(nodeId, side, cls) {
    const index = parseInt(cls.split('_')[1], 10) - 1;
    return portsOf.get(nodeId)[side][index];
  }

  function portClass(nodeId, side, name) {
    return `${side === 'outputs' ? 'output' : 'input'}_${portsOf.get(nodeId)[side].indexOf(name) + 1}`;
  }

  const names = (text) => (text ? text.split(',') : []);

  function addNodeFromHtml(html) {
    const holder = document.createElement('template');
    holder.innerHTML = html.trim();
    const el = holder.content.firstElementChild;
    const d = el.dataset;
    quiet++;
    const ports = { inputs: names(d.inputs), outputs: names(d.outputs) };
    const dfId = String(editor.addNode(d.type, ports.inputs.length, ports.outputs.length, +d.x, +d.y,
                                       `pw-${d.type}`, { node_id: d.nodeId }, el.outerHTML));
    quiet--;
    dfToNode.set(dfId, d.nodeId);
    nodeToDf.set(d.nodeId, dfId);
    portsOf.set(d.nodeId, ports);
    if (d.version) versions.set(d.nodeId, parseInt(d.version, 10));
    placed.set(d.nodeId, { x: +d.x, y: +d.y });
    const dom = document.getElementById(`node-${dfId}`);
    dom.dataset.nodeId = d.nodeId;
    htmx.process(dom);
    resized.observe(dom);
    return d.nodeId;
  }

  function loadInitialGraph() {
    for (const el of document.getElementById('initial-nodes').content.querySelectorAll('.pw-node')) {
      addNodeFromHtml(el.outerHTML);
    }
    const connections = JSON.parse(document.getElementById('initial-connections').textContent);
    quiet++;
    // Drawflow's addConnection redraws every wire of both nodes and reads the layout after each
    // write: quadratic on a big graph (bench/editor.py). Add them all, then draw each wire once.
    const redraw = editor.updateConnectionNodes;
    editor.updateConnectionNodes = () => {};
    try {
      for (const c of connections) {
        editor.addConnection(nodeToDf.get(c.source), nodeToDf.get(c.target),
          portClass(c.source, 'outputs', c.source_port), portClass(c.target, 'inputs', c.target_port));
      }
    } finally {
      editor.updateConnectionNodes = redraw;
      quiet--;
    }
    drawAllWires();
  }

  function drawAllWires() { drawWires(editor, canvas); }

  function connectionData(c) {
    const source = dfToNode.get(String(c.output_id));
    const target = dfToNode.get(String(c.input_id));
    return {
      source, target,
      source_port: portName(source, 'outputs', c.output_class),
      target_port: portName(target, 'inputs', c.input_class),
    };
  }

  // Leaving the open node sends its pending edit first (editor-autosave.js listens); a node whose
  // write is still in flight is shown once that write is stored, never from before it.
  function openPanel(nodeId) {
    document.dispatchEvent(new CustomEvent('pw:leave-node', { detail: { next: nodeId } }));
    const previous = pending.get(nodeId) || Promise.resolve();
    return previous.catch(() => {}).then(() => htmx.ajax('GET', `${base}/nodes/${nodeId}`, { target: '#panel', swap: 'innerHTML' }));
  }

  async function createNode(type, x, y) {
    const response = await send('POST', `${base}/nodes`, { type, x: Math.round(x), y: Math.round(y) });
    const nodeId = addNodeFromHtml(await response.text());
    openPanel(nodeId);
    announce('pw:node-added', { nodeId, type, x: placed.get(nodeId).x, y: placed.get(nodeId).y });
    return nodeId;
  }

  function clientToCanvas(clientX, clientY) {
    const rect = editor.precanvas.getBoundingClientRect();
    return { x: (clientX - rect.x) / editor.zoom, y: (clientY - rect.y) / editor.zoom };
  }

  function nextFreePosition() {
    const nodes = Object.values(editor.export().drawflow.Home.data);
    if (!nodes.length) return { x: 80, y: 120 };
    const selected = document.querySelector('.drawflow-node.selected');
    const anchor = selected ? editor.getNodeFromId(selected.id.slice(5))
      : nodes.reduce((a, b) => (b.pos_x > a.pos_x ? b : a));
    return { x: anchor.pos_x + 240, y: anchor.pos_y };
  }

  // --- canvas events -> rows --------------------------------------------------------------
  editor.on('connectionCreated', async (c) => {
    if (quiet) return;
    try {
      const data = connectionData(c);
      await send('POST', `${base}/connections`, data);
      announce('pw:connected', data);
    } catch (error) {
      quiet++;
      editor.removeSingleConnection(c.output_id, c.input_id, c.output_class, c.input_class);
      quiet--;
    }
  });

  editor.on('connectionRemoved', (c) => {
    if (quiet || !dfToNode.has(String(c.output_id)) || !dfToNode.has(String(c.input_id))) return;
    const data = connectionData(c);
    send('POST', `${base}/connections/delete`, data).then(() => announce('pw:disconnected', data), () => {});
  });

  editor.on('nodeRemoved', (dfId) => {
    const nodeId = dfToNode.get(String(dfId));
    if (quiet || !nodeId) return;
    dfToNode.delete(String(dfId));
    nodeToDf.delete(nodeId);
    sendNode(nodeId, 'DELETE', `${base}/nodes/${nodeId}`).catch(() => {});
    const form = document.querySelector('#panel .node-form');
    if (form && form.dataset.nodeId === nodeId) {
      document.getElementById('panel').innerHTML = '<p class="muted">Select a node to configure it.</p>';
    }
  });

  editor.on('nodeMoved', (dfId) => {
    const node = editor.getNodeFromId(dfId);
    const nodeId = dfToNode.get(String(dfId));
    const from = placed.get(nodeId);
    const to = { x: Math.round(node.pos_x), y: Math.round(node.pos_y) };
    sendNode(nodeId, 'POST', `${base}/nodes/${nodeId}/position`, to).then(() => {
      placed.set(nodeId, to);
      announce('pw:node-moved', { moves: [{ nodeId, from, to }] });
    }, () => placeNode(nodeId, from.x, from.y)); // not saved: back to where the server has it
  });

  editor.on('nodeSelected', (dfId) => openPanel(dfToNode.get(String(dfId))));

  // --- palette: drag onto the canvas, or Enter to add next to the selected node ------------
  for (const item of document.querySelectorAll('.palette-item')) {
    item.addEventListener('dragstart', (e) => e.dataTransfer.setData('text/plain', item.dataset.type));
    item.addEventListener('keydown', (e) => {
      if (e.key !== 'Enter') return;
      e.preventDefault();
      const p = nextFreePosition();
      createNode(item.dataset.type, p.x, p.y).catch(() => {});
    });
  }
  canvas.addEventListener('dragover', (e) => e.preventDefault());
  canvas.addEventListener('drop', (e) => {
    e.preventDefault();
    const type = e.dataTransfer.getData('text/plain');
    if (!nodeTypes[type]) return;
    const p = clientToCanvas(e.clientX, e.clientY);
    createNode(type, p.x, p.y).catch(() => {});
  });

  // A node's outputs change with its settings (the error output): the server says so after a save.
  document.addEventListener('pw-ports', (e) => {
    const { node, outputs } = e.detail;
    const dfId = nodeToDf.get(node);
    if (!dfId) return;
    quiet++;
    let count = Object.keys(editor.getNodeFromId(dfId).outputs).length;
    for (; count < outputs.length; count++) editor.addNodeOutput(dfId);
    for (; count > outputs.length; count--) editor.removeNodeOutput(dfId, `output_${count}`);
    quiet--;
    portsOf.get(node).outputs = outputs;
    editor.updateConnectionNodes(`node-${dfId}`);
  });

  // For the editor's add-ons (editor-testing.js, …): node writes through this tab's per-node queue and versions.
  window.patchwireEditorHooks = { sendNode, queueNode, versions, pending, setState };

  // --- canvas-only changes, for changes the server already accepted ------------------------
  function placeNode(nodeId, x, y) {
    const dfId = nodeToDf.get(nodeId);
    const node = editor.drawflow.drawflow[editor.module].data[dfId];
    node.pos_x = x;
    node.pos_y = y;
    const dom = document.getElementById(`node-${dfId}`);
    dom.style.left = `${x}px`;
    dom.style.top = `${y}px`;
    placed.set(nodeId, { x, y });
    editor.updateConnectionNodes(`node-${dfId}`);
  }

  function dropNode(nodeId) {
    const dfId = nodeToDf.get(nodeId);
    if (!dfId) return;
    quiet++;
    try { dfRemoveNodeId(`node-${dfId}`); } finally { quiet--; }
    dfToNode.delete(dfId);
    nodeToDf.delete(nodeId);
    portsOf.delete(nodeId);
    placed.delete(nodeId);
    const form = document.querySelector('#panel .node-form');
    if (form && form.dataset.nodeId === nodeId) {
      document.getElementById('panel').innerHTML = '<p class="muted">Select a node to configure it.</p>';
    }
  }

  function link(c, on) {
    quiet++;
    try {
      const args = [nodeToDf.get(c.source), nodeToDf.get(c.target),
        portClass(c.source, 'outputs', c.source_port), portClass(c.target, 'inputs', c.target_port)];
      if (on) editor.addConnection(...args); else editor.removeSingleConnection(...args);
    } finally { quiet--; }
  }

  async function sendJson(url, body) {
    return send('POST', url, undefined, JSON.stringify(body));
  }

  // Every delete the user starts (Delete key, context menu, selection) goes through
  // api.deleteNodes, which the history module replaces with one that remembers the nodes.
  const dfRemoveNodeId = editor.removeNodeId.bind(editor);
  editor.removeNodeId = (domId) => {
    if (quiet) return dfRemoveNodeId(domId);
    const nodeId = dfToNode.get(domId.slice(5));
    if (nodeId) api.deleteNodes([nodeId]).catch(() => {});
    return undefined;
  };

  const api = {
    editor, root, base, send, sendJson, addNodeFromHtml, createNode, openPanel, clientToCanvas,
    placeNode, dropNode, link,
    dfOf: (nodeId) => nodeToDf.get(nodeId),
    nodeOf: (dfId) => dfToNode.get(String(dfId)),
    nodeIds: () => [...nodeToDf.keys()],
    position: (nodeId) => placed.get(nodeId),
    element: (nodeId) => document.getElementById(`node-${nodeToDf.get(nodeId)}`),
    version: (nodeId) => versions.get(nodeId),
    sendNode,
    async deleteNodes(nodeIds) {
      const seen = Object.fromEntries(nodeIds.filter((id) => versions.has(id)).map((id) => [id, versions.get(id)]));
      await sendJson(`${base}/nodes/delete`, { nodes: nodeIds, versions: seen });
      nodeIds.forEach(dropNode);
    },
  };
  window.patchwireApi = api;

  loadInitialGraph();

  // The seam for the editor's other modules (editor-comfort.js, …): what they may use of the canvas.
  window.patchwireCanvas = {
    editor, base, send, sendNode, clientToCanvas,
    rowOf: (dfId) => dfToNode.get(String(dfId)),
    dfOf: (nodeId) => nodeToDf.get(nodeId),
    addNodeOfType: (type) => { const p = nextFreePosition(); return createNode(type, p.x, p.y); },
  };
  document.dispatchEvent(new CustomEvent('pw-editor-ready', { detail: window.patchwireCanvas }));
})();

// The read-only canvas of an execution page (Drawflow's view mode: pan and zoom, no editing): the
// pinned version's nodes (server-rendered, escaped) and wires. The status badges inside the nodes are
// updated by the page's WebSocket (out-of-band swaps). A click on a node dispatches
// `pw:node-selected` ({nodeId}) on the canvas; execution-detail.js opens the node's details.
(function () {
  'use strict';
  const canvas = document.getElementById('execution-canvas');
  if (!canvas) return;
  const editor = new Drawflow(canvas);
  editor.createCurvature = routeWire;
  editor.editor_mode = 'view';
  editor.reroute = false;
  editor.zoom_min = 0.25;
  editor.start();
  window.patchwireViewer = editor; // for tests and debugging

  const dfOf = new Map();
  const portsOf = new Map();
  const names = (text) => (text ? text.split(',') : []);
  for (const el of document.getElementById('execution-nodes').content.querySelectorAll('.pw-node')) {
    const d = el.dataset;
    const ports = { inputs: names(d.inputs), outputs: names(d.outputs) };
    const dfId = String(editor.addNode(d.type, ports.inputs.length, ports.outputs.length, +d.x, +d.y,
                                       `pw-${d.type}`, { node_id: d.nodeId }, el.outerHTML));
    dfOf.set(d.nodeId, dfId);
    portsOf.set(d.nodeId, ports);
    document.getElementById(`node-${dfId}`).dataset.nodeId = d.nodeId;
  }
  const portClass = (nodeId, side, name) => `${side === 'outputs' ? 'output' : 'input'}_${portsOf.get(nodeId)[side].indexOf(name) + 1}`;
  for (const c of JSON.parse(document.getElementById('execution-connections').textContent)) {
    if (!dfOf.has(c.source) || !dfOf.has(c.target)) continue;
    editor.addConnection(dfOf.get(c.source), dfOf.get(c.target), portClass(c.source, 'outputs', c.source_port),
                         portClass(c.target, 'inputs', c.target_port));
  }

  // Zoom to fit: the whole workflow in view (at most 100 %).
  function fit() {
    const boxes = [...canvas.querySelectorAll('.drawflow-node')].map((el) => ({
      x: el.offsetLeft, y: el.offsetTop, w: el.offsetWidth, h: el.offsetHeight }));
    if (!boxes.length) return;
    const minX = Math.min(...boxes.map((b) => b.x)), minY = Math.min(...boxes.map((b) => b.y));
    const maxX = Math.max(...boxes.map((b) => b.x + b.w)), maxY = Math.max(...boxes.map((b) => b.y + b.h));
    const pad = 40;
    const zoom = Math.max(editor.zoom_min, Math.min(1, (canvas.clientWidth - 2 * pad) / (maxX - minX || 1),
                                                    (canvas.clientHeight - 2 * pad) / (maxY - minY || 1)));
    editor.zoom = zoom;
    editor.zoom_last_value = zoom;
    editor.canvas_x = (canvas.clientWidth - (maxX - minX) * zoom) / 2 - minX * zoom;
    editor.canvas_y = (canvas.clientHeight - (maxY - minY) * zoom) / 2 - minY * zoom;
    editor.precanvas.style.transform = `translate(${editor.canvas_x}px, ${editor.canvas_y}px) scale(${zoom})`;
  }
  fit();
  drawWires(editor, canvas);

  // Badges change the nodes' size: keep the wires on their ports.
  const resized = new ResizeObserver((entries) => {
    for (const entry of entries) if (entry.target.isConnected) editor.updateConnectionNodes(entry.target.id);
  });
  for (const el of canvas.querySelectorAll('.drawflow-node')) resized.observe(el);

  canvas.addEventListener('click', (e) => {
    const el = e.target.closest('.drawflow-node');
    if (el) canvas.dispatchEvent(new CustomEvent('pw:node-selected', { bubbles: true, detail: { nodeId: el.dataset.nodeId } }));
  });
  window.patchwireView = {
    fit,
    select(nodeId) {
      for (const el of canvas.querySelectorAll('.drawflow-node')) el.classList.toggle('pw-selected', el.dataset.nodeId === nodeId);
    },
  };
})();
