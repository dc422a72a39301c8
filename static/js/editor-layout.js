// Align, distribute and auto-layout the selected nodes (all nodes when nothing is selected).
// The layout itself comes from dagre (static/vendor/dagre); positions are saved in one request
// (POST /positions, one transaction) and the change is one undo step.
(function () {
  'use strict';
  const api = window.patchwireApi;
  const history = window.patchwireHistory;
  const selection = window.patchwireSelection;
  if (!api || !history || !selection) return;
  const { editor, base, sendJson } = api;

  function targets() {
    const ids = selection.ids();
    return (ids.length ? ids : api.nodeIds()).map((nodeId) => {
      const el = api.element(nodeId);
      const { x, y } = api.position(nodeId);
      return { nodeId, x, y, w: el.offsetWidth, h: el.offsetHeight };
    });
  }

  async function apply(boxes, placeOf) {
    const moves = boxes.map((b) => ({ nodeId: b.nodeId, from: { x: b.x, y: b.y }, to: placeOf(b) }))
      .map((m) => ({ ...m, to: { x: Math.round(m.to.x), y: Math.round(m.to.y) } }))
      .filter((m) => m.to.x !== m.from.x || m.to.y !== m.from.y);
    if (!moves.length) return;
    await sendJson(`${base}/positions`,
      { positions: moves.map((m) => ({ node: m.nodeId, ...m.to, version: api.version(m.nodeId) })) });
    for (const m of moves) api.placeNode(m.nodeId, m.to.x, m.to.y);
    history.record(history.steps.moved(moves));
  }

  const min = (values) => Math.min(...values);
  const max = (values) => Math.max(...values);

  const aligners = {
    left: (boxes) => { const x = min(boxes.map((b) => b.x)); return (b) => ({ x, y: b.y }); },
    top: (boxes) => { const y = min(boxes.map((b) => b.y)); return (b) => ({ x: b.x, y }); },
    center: (boxes) => {
      const cx = (min(boxes.map((b) => b.x)) + max(boxes.map((b) => b.x + b.w))) / 2;
      return (b) => ({ x: cx - b.w / 2, y: b.y });
    },
  };

  // Equal gaps between neighbours along one axis; the first and last node stay where they are.
  function distribute(boxes, axis) {
    const [pos, size] = axis === 'x' ? ['x', 'w'] : ['y', 'h'];
    const sorted = [...boxes].sort((a, b) => a[pos] - b[pos]);
    const span = sorted[sorted.length - 1][pos] + sorted[sorted.length - 1][size] - sorted[0][pos];
    const gap = (span - sorted.reduce((sum, b) => sum + b[size], 0)) / Math.max(sorted.length - 1, 1);
    const place = new Map();
    let at = sorted[0][pos];
    for (const b of sorted) { place.set(b.nodeId, at); at += b[size] + gap; }
    return (b) => ({ ...{ x: b.x, y: b.y }, [pos]: place.get(b.nodeId) });
  }

  function autoLayout(boxes) {
    const graph = new dagre.graphlib.Graph();
    graph.setGraph({ rankdir: 'LR', nodesep: 40, ranksep: 80, marginx: 0, marginy: 0 });
    graph.setDefaultEdgeLabel(() => ({}));
    for (const b of boxes) graph.setNode(b.nodeId, { width: b.w, height: b.h });
    const data = editor.export().drawflow[editor.module].data;
    for (const node of Object.values(data)) {
      for (const port of Object.values(node.outputs)) {
        for (const c of port.connections) {
          const [source, target] = [api.nodeOf(node.id), api.nodeOf(c.node)];
          if (graph.hasNode(source) && graph.hasNode(target)) graph.setEdge(source, target);
        }
      }
    }
    dagre.layout(graph);
    // dagre gives centres from (0, 0); keep the group's top-left corner where it was
    const left = min(boxes.map((b) => b.x));
    const top = min(boxes.map((b) => b.y));
    return (b) => { const n = graph.node(b.nodeId); return { x: left + n.x - b.w / 2, y: top + n.y - b.h / 2 }; };
  }

  const actions = {
    'align-left': (boxes) => aligners.left(boxes),
    'align-top': (boxes) => aligners.top(boxes),
    'align-center': (boxes) => aligners.center(boxes),
    'distribute-x': (boxes) => distribute(boxes, 'x'),
    'distribute-y': (boxes) => distribute(boxes, 'y'),
    'auto-layout': (boxes) => autoLayout(boxes),
  };

  async function arrange(action) {
    const boxes = targets();
    if (boxes.length < (action === 'auto-layout' ? 1 : 2)) return;
    await apply(boxes, actions[action](boxes));
  }

  for (const button of document.querySelectorAll('[data-arrange]')) {
    button.addEventListener('click', () => arrange(button.dataset.arrange).catch(() => {}));
  }
  window.patchwireLayout = { arrange };
})();
