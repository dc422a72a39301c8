// Mapping data and writing expressions (docs/editor.md): drag a field of the node's data into a parameter,
// autocomplete inside {{ … }}, and a wider editor with its live preview. Works on any element of the panel
// with draggable and data-expr (the expression that reaches a field, without braces); the text parameters
// that take expressions are the ones editor-testing.js marks data-expr-field (they have a preview).
(function () {
  'use strict';
  const panel = document.getElementById('panel');
  if (!panel) return;
  const MIME = 'application/x-patchwire-expr';
  const TOKEN = /[A-Za-z_]\w*(?:\.\w*|\[(?:"[^"]*"?|'[^']*'?|\d+)?\]?)*$/;
  const MAX_OPTIONS = 40;

  // --- shared bits ---------------------------------------------------------------------------------------
  const status = document.createElement('p');
  status.id = 'expr-status';
  status.className = 'expr-status';
  status.setAttribute('role', 'status');
  status.hidden = true;
  document.body.append(status);

  function say(text) {
    status.textContent = text;
    status.hidden = !text;
  }

  document.addEventListener('pointerdown', () => say(''));

  function braces(expr) { return `{{ ${expr} }}`; }

  function labelOf(field) {
    const label = field.labels && field.labels[0];
    const text = (label ? label.textContent : '') || field.getAttribute('aria-label') || field.name || 'This field';
    return text.replace(/\*/g, '').trim();
  }

  function nodeUrl() {
    const section = panel.querySelector('.node-testing');
    if (section && section.dataset.nodeUrl) return section.dataset.nodeUrl;
    const form = panel.querySelector('form.node-form');
    return form ? form.getAttribute('hx-post') : null;
  }

  // Writes text into a field the way typing would: the autosave and the preview listen for `input`.
  function insert(field, text, start, end) {
    field.setRangeText(text, start, end, 'end');
    field.dispatchEvent(new Event('input', { bubbles: true }));
  }

  // --- drag a field into a parameter ---------------------------------------------------------------------
  let hovered = null;

  function dropTarget(el) {
    if (!(el instanceof Element) || el.closest('dialog')) return null;
    const form = el.closest('form.node-form');
    if (!form || !panel.contains(form)) return null;
    const own = el.closest('[data-expr-field]');
    if (own) return { field: own, ok: true };
    const label = el.closest('label');
    const control = el.closest('input, select, textarea') || (label && label.control);
    if (control) return control.type === 'hidden' ? null : { field: control, ok: false };
    const box = el.closest('.field');
    if (!box) return null;
    const fields = box.querySelectorAll('[data-expr-field]');
    if (fields.length === 1) return { field: fields[0], ok: true };
    if (fields.length) return null;
    const other = box.querySelector('input:not([type=hidden]), select, textarea');
    return other ? { field: other, ok: false } : null;
  }

  function hover(target) {
    const field = target ? target.field : null;
    if (hovered && hovered !== field) hovered.classList.remove('expr-drop-hover', 'expr-drop-refused');
    hovered = field;
    if (field) field.classList.add(target.ok ? 'expr-drop-hover' : 'expr-drop-refused');
  }

  function clearMessage() {
    const old = document.getElementById('expr-drop-message');
    if (old) old.remove();
  }

  function refuse(field) {
    clearMessage();
    const message = document.createElement('p');
    message.id = 'expr-drop-message';
    message.className = 'field-error expr-drop-message';
    message.setAttribute('role', 'alert');
    message.textContent = `“${labelOf(field)}” can’t take an expression: nothing was changed. ` +
      'Drop the field onto a text parameter (outlined while you drag).';
    (field.closest('.field') || field.parentElement).append(message);
  }

  // Where a drop lands in the text: the selection if the field has one, else the point under the pointer
  // (where the browser can tell), else the caret of a focused field, else the end.
  function dropRange(field, e) {
    const focused = document.activeElement === field;
    if (focused && field.selectionStart !== field.selectionEnd) return [field.selectionStart, field.selectionEnd];
    const pos = document.caretPositionFromPoint ? document.caretPositionFromPoint(e.clientX, e.clientY) : null;
    if (pos && pos.offsetNode === field) return [pos.offset, pos.offset];
    if (focused) return [field.selectionStart, field.selectionEnd];
    return [field.value.length, field.value.length];
  }

  function ours(e) {
    return e.dataTransfer && Array.from(e.dataTransfer.types || []).includes(MIME);
  }

  document.addEventListener('dragstart', (e) => {
    const source = e.target instanceof Element ? e.target.closest('[draggable][data-expr]') : null;
    if (!source || !panel.contains(source)) return;
    e.dataTransfer.setData(MIME, source.dataset.expr);
    e.dataTransfer.setData('text/plain', braces(source.dataset.expr));
    e.dataTransfer.effectAllowed = 'copy';
    clearMessage();
    panel.classList.add('expr-dragging');
  });

  panel.addEventListener('dragover', (e) => {
    if (!ours(e)) return;
    const target = dropTarget(e.target);
    hover(target);
    if (!target) return;
    e.preventDefault(); // a drop here is ours (also a refused one: it says why)
    e.dataTransfer.dropEffect = 'copy';
  });

  panel.addEventListener('drop', (e) => {
    if (!ours(e)) return;
    const target = dropTarget(e.target);
    endDrag();
    if (!target) return;
    e.preventDefault();
    if (!target.ok) { refuse(target.field); return; }
    clearMessage();
    const [start, end] = dropRange(target.field, e);
    target.field.focus();
    insert(target.field, braces(e.dataTransfer.getData(MIME)), start, end);
  });

  function endDrag() {
    panel.classList.remove('expr-dragging');
    hover(null);
  }
  document.addEventListener('dragend', endDrag);

  // --- the keyboard: Enter inserts a focused key into the last expression field, c copies it ----------
  let lastField = null;
  panel.addEventListener('focusin', (e) => {
    if (e.target.matches && e.target.matches('form.node-form [data-expr-field]')) lastField = e.target;
  });

  panel.addEventListener('keydown', (e) => {
    const key = e.target instanceof Element ? e.target.closest('[draggable][data-expr]') : null;
    if (!key || e.ctrlKey || e.metaKey || e.altKey || (e.key !== 'Enter' && e.key !== 'c')) return;
    e.preventDefault();
    e.stopPropagation();
    const text = braces(key.dataset.expr);
    if (e.key === 'Enter' && lastField && lastField.isConnected) {
      insert(lastField, text, lastField.selectionStart, lastField.selectionEnd);
      say(`Inserted ${text} into “${labelOf(lastField)}”.`);
      return;
    }
    const copied = navigator.clipboard ? navigator.clipboard.writeText(text) : Promise.reject(new Error('no clipboard'));
    copied.then(() => say(`Copied ${text}: paste it into a parameter.`),
      () => say(`Could not copy: the expression is ${text}`));
  });

  // --- completions ---------------------------------------------------------------------------------------
  const list = document.createElement('ul');
  list.id = 'expr-completions';
  list.className = 'expr-completions';
  list.setAttribute('role', 'listbox');
  list.setAttribute('aria-label', 'Completions');
  list.hidden = true;
  document.body.append(list);
  const cache = new WeakMap(); // node form → { key, promise }
  let open = null; // { field, options, active, start, end }

  function candidates(data) {
    const paths = [];
    const add = (text, type, detail) => paths.push({ text, type, detail });
    for (const f of data.fields) add(f.expr, f.type, f.example);
    for (const n of data.nodes) {
      add(n.expr, 'node', 'output items');
      add(`${n.expr}[0]`, 'object', 'first item');
      for (const f of n.fields) add(f.expr, f.type, f.example);
    }
    for (const f of data.trigger) add(f.expr, f.type, f.example);
    for (const v of data.variables) add(v.name, 'variable', v.doc);
    for (const fn of data.functions) add(`${fn.name}(`, 'function', fn.doc);
    const filters = data.filters.map((f) => ({ text: f.name, type: 'filter', detail: f.doc }));
    return { paths, filters };
  }

  function completions() {
    const form = panel.querySelector('form.node-form');
    const url = nodeUrl();
    if (!form || !url) return Promise.resolve(null);
    const data = document.getElementById('node-data');
    const key = `${url}|${data ? `${data.dataset.runId}|${data.dataset.pinned}` : ''}`;
    let entry = cache.get(form);
    if (!entry || entry.key !== key) {
      const promise = fetch(`${url}/completions`, { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
        .then((r) => (r.ok ? r.json() : null)).then((json) => (json ? candidates(json) : null)).catch(() => null);
      entry = { key, promise };
      cache.set(form, entry);
    }
    return entry.promise;
  }

  // The part of the text before the caret being completed: a path, or a filter name after `|`.
  function contextOf(field) {
    const pos = field.selectionStart;
    if (pos !== field.selectionEnd) return null;
    const before = field.value.slice(0, pos);
    const opened = before.lastIndexOf('{{');
    if (opened < 0 || before.indexOf('}}', opened) >= 0) return null;
    const inside = before.slice(opened + 2);
    const filter = inside.match(/\|\s*([A-Za-z_]\w*)?$/);
    if (filter) return { kind: 'filter', token: filter[1] || '', start: pos - (filter[1] || '').length, end: pos };
    const token = (inside.match(TOKEN) || [''])[0];
    return { kind: 'path', token, start: pos - token.length, end: pos, fresh: !inside.trim() };
  }

  // Only the next step of a path: after `item.` its keys, not every key below them.
  function nextStep(rest) {
    return !/[.[]/.test(rest.replace(/"[^"]*"/g, '""').slice(1));
  }

  function matching(context, model) {
    const token = context.token.toLowerCase();
    if (context.kind === 'filter') return model.filters.filter((c) => c.text.toLowerCase().startsWith(token));
    return model.paths.filter((c) => c.text !== context.token && c.text.toLowerCase().startsWith(token) &&
      nextStep(c.text.slice(token.length)));
  }

  // Unasked, a list opens right after `{{`, on a word being typed, or after `|`; Ctrl+Space asks anywhere.
  async function suggest(field, asked) {
    const wanted = (context) => context && (asked || context.kind !== 'path' || context.token || context.fresh);
    if (!wanted(contextOf(field))) { close(); return; }
    const model = await completions();
    const context = contextOf(field); // as it is now: the person may have typed on while the list loaded
    if (!model || !wanted(context) || document.activeElement !== field) { close(); return; }
    const options = matching(context, model).slice(0, MAX_OPTIONS);
    if (!options.length) { close(); return; }
    show(field, options, context);
  }

  function show(field, options, context) {
    list.replaceChildren(...options.map((option, i) => {
      const li = document.createElement('li');
      li.id = `expr-option-${i}`;
      li.setAttribute('role', 'option');
      const text = document.createElement('span');
      text.className = 'expr-option-text';
      text.textContent = option.text;
      const type = document.createElement('span');
      type.className = 'expr-option-type';
      type.textContent = option.type;
      const detail = document.createElement('span');
      detail.className = 'expr-option-detail';
      detail.textContent = option.detail || '';
      li.append(text, type, detail);
      return li;
    }));
    (field.closest('dialog') || document.body).append(list);
    const rect = field.getBoundingClientRect();
    list.style.left = `${Math.round(rect.left)}px`;
    list.style.top = `${Math.round(rect.bottom + 2)}px`;
    list.style.minWidth = `${Math.round(Math.min(rect.width, 420))}px`;
    list.hidden = false;
    if (open && open.field !== field) open.field.setAttribute('aria-expanded', 'false');
    open = { field, options, context, active: 0 };
    field.setAttribute('aria-expanded', 'true');
    highlight(0);
  }

  function highlight(index) {
    if (!open) return;
    open.active = (index + open.options.length) % open.options.length;
    for (const li of list.children) li.setAttribute('aria-selected', String(li.id === `expr-option-${open.active}`));
    const li = list.children[open.active];
    open.field.setAttribute('aria-activedescendant', li.id);
    li.scrollIntoView({ block: 'nearest' });
  }

  function close() {
    if (!open) return;
    open.field.setAttribute('aria-expanded', 'false');
    open.field.removeAttribute('aria-activedescendant');
    open = null;
    list.hidden = true;
  }

  function accept(index) {
    const { field, options, context } = open;
    close();
    insert(field, options[index].text, context.start, context.end);
  }

  function isExpressionField(el) {
    return el instanceof Element && el.matches('[data-expr-field]');
  }

  document.addEventListener('input', (e) => {
    if (isExpressionField(e.target) && e.isTrusted) suggest(e.target);
  });
  document.addEventListener('focusout', (e) => { if (open && e.target === open.field) close(); });
  list.addEventListener('mousedown', (e) => {
    e.preventDefault(); // the field keeps the focus
    const li = e.target.closest('[role=option]');
    if (li && open) accept(Number(li.id.replace('expr-option-', '')));
  });

  document.addEventListener('keydown', (e) => {
    if (!isExpressionField(e.target)) return;
    if (e.key === ' ' && e.ctrlKey) { e.preventDefault(); suggest(e.target, true); return; }
    if (e.key === 'Enter' && e.altKey && !e.target.closest('dialog')) { e.preventDefault(); openWide(e.target); return; }
    if (!open || open.field !== e.target) return;
    const keys = {
      ArrowDown: () => highlight(open.active + 1),
      ArrowUp: () => highlight(open.active - 1),
      Enter: () => accept(open.active),
      Tab: () => accept(open.active),
      Escape: () => close(),
    };
    if (!keys[e.key]) return;
    e.preventDefault();
    e.stopPropagation();
    keys[e.key]();
  }, true);

  // --- the wider editor ----------------------------------------------------------------------------------
  let dialog = null;
  let editing = null; // the field the dialog writes back to
  let editingPlace = null;
  let previewTimer = null;
  let previewSeq = 0;

  function buildDialog() {
    dialog = document.createElement('dialog');
    dialog.id = 'expr-wide';
    dialog.className = 'expr-wide';
    dialog.setAttribute('aria-labelledby', 'expr-wide-title');
    const form = document.createElement('form');
    form.method = 'dialog';
    const title = document.createElement('h2');
    title.id = 'expr-wide-title';
    const area = document.createElement('textarea');
    area.id = 'expr-wide-text';
    area.className = 'mono';
    area.rows = 12;
    area.spellcheck = false;
    area.dataset.exprField = 'wide';
    asCombobox(area);
    const hint = document.createElement('p');
    hint.className = 'hint';
    hint.textContent = 'Type {{ and a name for completions (Ctrl+Space to ask). Closing writes the text back.';
    const output = document.createElement('output');
    output.className = 'expr-preview expr-wide-preview';
    output.setAttribute('aria-live', 'polite');
    output.setAttribute('aria-label', 'Preview');
    const row = document.createElement('div');
    row.className = 'row';
    const done = document.createElement('button');
    done.className = 'primary';
    done.value = 'done';
    done.textContent = 'Done';
    row.append(done);
    form.append(title, area, hint, output, row);
    dialog.append(form);
    document.body.append(dialog);
    area.addEventListener('input', () => { clearTimeout(previewTimer); previewTimer = setTimeout(widePreview, 300); });
    dialog.addEventListener('close', writeBack);
  }

  async function widePreview() {
    const url = nodeUrl();
    if (!editing || !url) return;
    const area = dialog.querySelector('textarea');
    const seq = ++previewSeq;
    const query = new URLSearchParams({ _field: editing.name });
    query.set(editing.name, area.value);
    try {
      const response = await fetch(`${url}/preview?${query}`, { credentials: 'same-origin' });
      const html = response.ok ? await response.text() : '';
      if (seq === previewSeq) dialog.querySelector('output').innerHTML = html; // our server-rendered partial
    } catch (error) {
      // offline for a moment: the preview stays as it was
    }
  }

  // Where a field is in its form (name, and rank among fields of that name: a key–value list repeats names),
  // to find it again if the form was rendered anew while the dialog was open.
  function placeOf(field) {
    const form = field.closest('form.node-form');
    const same = form ? Array.from(form.querySelectorAll('[data-expr-field]')).filter((f) => f.name === field.name) : [];
    return { node: form ? form.dataset.nodeId : null, name: field.name, rank: same.indexOf(field) };
  }

  function findAgain(place) {
    const form = panel.querySelector(`form.node-form[data-node-id="${CSS.escape(place.node || '')}"]`);
    if (!form) return null;
    return Array.from(form.querySelectorAll('[data-expr-field]')).filter((f) => f.name === place.name)[place.rank] || null;
  }

  function openWide(field) {
    if (!dialog) buildDialog();
    editing = field;
    editingPlace = placeOf(field);
    const area = dialog.querySelector('textarea');
    dialog.querySelector('h2').textContent = `Expression — ${labelOf(field)}`;
    area.setAttribute('aria-label', `Expression for ${labelOf(field)}`);
    area.value = field.value;
    dialog.querySelector('output').replaceChildren();
    dialog.showModal();
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
    widePreview();
  }

  function writeBack() {
    close();
    clearTimeout(previewTimer);
    const field = editing && editing.isConnected ? editing : (editingPlace && findAgain(editingPlace));
    editing = null;
    if (!field) return;
    const text = dialog.querySelector('textarea').value;
    if (text !== field.value) insert(field, text, 0, field.value.length);
    field.focus();
  }

  // --- wiring the panel's fields (they are replaced with the panel) ---------------------------------------
  // An expression field offers completions from the one list (ARIA combobox with a listbox popup).
  function asCombobox(el) {
    el.setAttribute('role', 'combobox');
    el.setAttribute('aria-autocomplete', 'list');
    el.setAttribute('aria-controls', list.id);
    el.setAttribute('aria-expanded', 'false');
  }

  function wire() {
    const form = panel.querySelector('form.node-form');
    if (form) {
      for (const field of form.querySelectorAll('[data-expr-field]:not([data-expr-wired])')) {
        field.dataset.exprWired = 'on';
        asCombobox(field);
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'expr-wide-button';
        button.textContent = '⤢';
        button.title = 'Wider editor (Alt+Enter)';
        button.setAttribute('aria-label', `Open a wider editor for ${labelOf(field)}`);
        button.addEventListener('click', () => openWide(field));
        field.after(button);
      }
    }
    for (const key of panel.querySelectorAll('[draggable][data-expr]:not([tabindex])')) {
      key.tabIndex = 0;
      key.setAttribute('aria-keyshortcuts', 'Enter C');
    }
  }
  document.addEventListener('htmx:after:swap', wire);
  new MutationObserver(wire).observe(panel, { childList: true, subtree: true });
  wire();
})();
