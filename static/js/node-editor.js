// The node editor (docs/editor.md, "The node editor"): the panel docked under the canvas with the Input, Parameters
// and Output panes. Its markup and data are server-rendered (templates/nodes/_panel.html, templates/testing/); this
// file only resizes it (the height is remembered), closes it (button, Escape) without dropping the form, and
// gives a dragged field its expression as text (the drop side is static/js/editor-expressions.js).
(function () {
  'use strict';
  const panel = document.getElementById('panel');
  const root = document.getElementById('editor-root');
  if (!panel || !root) return;
  const HEIGHT_KEY = 'patchwire.nodeEditor.height';
  const MIN_HEIGHT = 180;

  function editorEl() { return panel.querySelector(':scope > .node-editor'); }
  function clamp(height) { return Math.max(MIN_HEIGHT, Math.min(height, root.getBoundingClientRect().height - 140)); }

  // --- layout: wide (the three panes side by side under the canvas, the default) or compact (in the side column)
  const LAYOUT_KEY = 'patchwire.nodeEditor.layout';
  function applyLayout() {
    const wide = localStorage.getItem(LAYOUT_KEY) !== 'compact';
    root.classList.toggle('ne-wide', wide);
    for (const b of panel.querySelectorAll('.ne-layout')) b.setAttribute('aria-pressed', String(wide));
  }
  applyLayout();
  new MutationObserver(applyLayout).observe(panel, { childList: true });

  const stored = Number(localStorage.getItem(HEIGHT_KEY));
  if (stored) root.style.setProperty('--ne-height', `${clamp(stored)}px`);

  // --- resize: drag the top edge -------------------------------------------------------------------------
  panel.addEventListener('pointerdown', (e) => {
    const handle = e.target.closest('.ne-handle');
    if (!handle) return;
    e.preventDefault();
    handle.setPointerCapture(e.pointerId);
    root.classList.add('ne-resizing');
    const bottom = root.getBoundingClientRect().bottom;
    const move = (ev) => root.style.setProperty('--ne-height', `${clamp(bottom - ev.clientY)}px`);
    const up = () => {
      handle.removeEventListener('pointermove', move);
      root.classList.remove('ne-resizing');
      localStorage.setItem(HEIGHT_KEY, String(Math.round(panel.getBoundingClientRect().height)));
    };
    handle.addEventListener('pointermove', move);
    handle.addEventListener('pointerup', up, { once: true });
  });

  // --- close and open again: the form stays in the page, so nothing typed is dropped ------------------------
  function show(open) {
    const editor = editorEl();
    const note = panel.querySelector(':scope > .ne-closed');
    if (!editor) return;
    editor.hidden = !open;
    if (note) note.hidden = open;
    if (!open) {
      const canvas = document.getElementById('canvas');
      if (canvas) canvas.focus({ preventScroll: true });
    }
  }
  panel.addEventListener('click', (e) => {
    if (e.target.closest('.ne-layout')) {
      localStorage.setItem(LAYOUT_KEY, root.classList.contains('ne-wide') ? 'compact' : 'wide');
      applyLayout();
    } else if (e.target.closest('.ne-close')) show(false);
    else if (e.target.closest('.ne-reopen')) show(true);
  });
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape' || e.defaultPrevented || document.querySelector('dialog[open]')) return;
    const editor = editorEl();
    if (!editor || editor.hidden) return;
    // Escape on the canvas is the selection's (editor-selection.js); in the editor or on the page, it closes it.
    const focus = document.activeElement;
    if (focus && focus !== document.body && !editor.contains(focus)) return;
    e.preventDefault();
    show(false);
  });
  // A click on the node whose editor was closed opens it again (Drawflow loads nothing for a selected node).
  const canvas = document.getElementById('canvas');
  if (canvas) {
    canvas.addEventListener('click', (e) => {
      const node = e.target.closest('.drawflow-node');
      const editor = editorEl();
      if (node && editor && editor.hidden && node.dataset.nodeId === editor.dataset.nodeId) show(true);
    });
  }

  // --- a dragged field carries its expression (as text: a drop into any text field inserts it) -------------
  panel.addEventListener('dragstart', (e) => {
    const field = e.target.closest && e.target.closest('[data-expr]');
    if (!field || !e.dataTransfer) return;
    e.dataTransfer.setData('text/plain', `{{ ${field.dataset.expr} }}`);
    e.dataTransfer.effectAllowed = 'copy';
  });
})();
