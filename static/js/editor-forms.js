// Form building blocks of the node panel (templates/nodes/_fields.html, _conditions.html, _options.html):
// condition rows, key–value rows, JSON checked as it is typed, code areas, display_when, "Add option"
// groups and dynamic options. Everything is delegated from the document, so a panel swapped in by htmx
// works without wiring; the blocks only change the form's fields, never how it is submitted.
(() => {
  'use strict';
  const changed = (el) => el.dispatchEvent(new Event('input', { bubbles: true }));

  // --- condition builder ----------------------------------------------------------------------------
  function builderOf(el) { return el.closest('.condition-builder'); }

  function fillOperators(row) {
    const builder = builderOf(row);
    const operators = JSON.parse(builder.dataset.operators);
    const labels = JSON.parse(builder.dataset.labels);
    const select = row.querySelector('.condition-operator');
    const kind = row.querySelector('.condition-type').value;
    const current = select.value;
    select.replaceChildren(...(operators[kind] || []).map((name) => {
      const option = new Option(labels[name] || name, name);
      option.selected = name === current;
      return option;
    }));
    showValue(row);
  }

  function showValue(row) {
    const noValue = JSON.parse(builderOf(row).dataset.noValue);
    row.querySelector('.condition-value').hidden = noValue.includes(row.querySelector('.condition-operator').value);
  }

  function numberPorts(builder) {
    const ports = JSON.parse(builder.dataset.ports);
    const numbered = builder.classList.contains('rule-builder') ? '.condition-rule' : '.condition-row';
    builder.querySelectorAll(numbered).forEach((row, i) => {
      const name = row.querySelector('.rule-port-name');
      if (name) name.textContent = i < ports.length ? ports[i] : 'none (at most ' + ports.length + ' rules)';
    });
  }

  function addCondition(button) {
    const builder = builderOf(button);
    const template = builder.querySelector(':scope > .condition-row-template');
    const row = template.content.firstElementChild.cloneNode(true);
    const rule = button.closest('.condition-rule');
    if (rule) {  // a row of a Switch rule: it posts its rule's key
      row.querySelector('.condition-group').value = rule.dataset.key;
      rule.querySelector('.condition-rows').append(row);
    } else builder.querySelector('.condition-rows').append(row);
    numberPorts(builder);
    row.querySelector('.condition-field').focus();
  }

  // --- Switch rules: groups of condition rows ---------------------------------------------------------
  let ruleKeys = 0;
  function addRule(builder) {
    const rule = builder.querySelector(':scope > .condition-rule-template').content.firstElementChild.cloneNode(true);
    const key = 'n' + (++ruleKeys) + '-' + Date.now().toString(36);
    rule.dataset.key = key;
    rule.querySelector('.rule-key').value = key;
    rule.querySelectorAll('.condition-group').forEach((input) => { input.value = key; });
    builder.querySelector('.condition-rules').append(rule);
    numberPorts(builder);
    rule.querySelector('.condition-field').focus();
  }

  // --- an autosave's errors on the rows they name -------------------------------------------------------
  // `conditions[2].value: …` goes next to row 2; a Switch's `rules[1].conditions[0].value: …` next to row 0
  // of rule 1 and `rules[2].conditions: …` on rule 2. The field keeps a short message (as the server's
  // full render does); a part naming no row stays in it. Returns the errors for the fields' own messages.
  function rowError(target, message, after) {
    const p = document.createElement('p');
    p.className = 'field-error row-error';
    p.dataset.autosave = '';
    p.setAttribute('role', 'alert');
    p.textContent = message;
    if (after) after.after(p); else target.append(p);
    target.classList.add('has-error');
  }

  function placeRowErrors(form, errors) {
    form.querySelectorAll('.condition-builder .row-error').forEach((p) => p.remove()); // a full render's too
    form.querySelectorAll('.condition-row.has-error, .condition-rule.has-error').forEach((el) => el.classList.remove('has-error'));
    const result = { ...errors };
    form.querySelectorAll('.condition-builder').forEach((builder) => {
      const name = builder.dataset.name;
      if (!errors[name]) return;
      const rules = builder.classList.contains('rule-builder');
      const groups = [...builder.querySelectorAll(rules ? '.condition-rule' : '.condition-row')];
      const rest = [];
      for (const part of errors[name].split('; ')) {
        const m = part.startsWith(name + '[') && part.slice(name.length).match(/^\[(\d+)\]\.?(.*)$/s);
        const group = m && groups[+m[1]];
        if (!group) { rest.push(part); continue; }
        if (!rules) { rowError(group, m[2]); continue; }
        const inRow = m[2].match(/^conditions\[(\d+)\]\.?(.*)$/s);
        const row = inRow && group.querySelectorAll('.condition-row')[+inRow[1]];
        if (row) rowError(row, inRow[2]);
        else rowError(group, m[2], group.querySelector('.rule-head'));
      }
      result[name] = rest.length ? rest.join('; ') : 'Fix the conditions marked below.';
    });
    return result;
  }
  window.pwForms = { placeRowErrors };

  // --- key–value rows ---------------------------------------------------------------------------------
  function addKeyValue(button) {
    const field = button.closest('.field');
    const row = field.querySelector('.kv-row-template').content.firstElementChild.cloneNode(true);
    field.querySelector('table.kv tbody').append(row);
    numberRows(field.querySelector('table.kv'));
    row.querySelector('input').focus();
  }

  // Each row's controls are named with the row's number ("Fields value 2"), as the server renders them.
  function numberRows(table) {
    table.querySelectorAll('tbody > tr.kv-row').forEach((tr, i) => {
      for (const el of tr.querySelectorAll('[data-kv-label]')) el.setAttribute('aria-label', `${el.dataset.kvLabel} ${i + 1}`);
    });
  }

  // --- JSON as it is typed ------------------------------------------------------------------------------
  function checkJson(area) {
    const status = area.closest('.field').querySelector('.json-status');
    if (!status) return;
    let message = '';
    if (area.value.trim()) {
      try { JSON.parse(area.value); } catch (err) { message = 'Not valid JSON: ' + err.message; }
    }
    status.textContent = message;
    status.hidden = !message;
    area.closest('.field').classList.toggle('json-invalid', Boolean(message));
  }

  // --- display_when -----------------------------------------------------------------------------------
  function valueOf(form, name) {
    const fields = form.querySelectorAll(`[name="${CSS.escape(name)}"]`);
    for (const el of fields) {
      if (el.type === 'checkbox') return el.checked ? 'true' : 'false';
      if (!el.disabled) return el.value;
    }
    return '';
  }

  function applyDisplayWhen(form) {
    form.querySelectorAll('[data-display-when]').forEach((field) => {
      const rule = JSON.parse(field.dataset.displayWhen);
      const shown = Object.entries(rule).every(([other, allowed]) => allowed.map(String).includes(valueOf(form, other)));
      const optional = field.dataset.collection;
      const picked = !optional || !field.querySelector('.option-marker').disabled;
      field.hidden = !(shown && picked);
      field.classList.toggle('hidden-by-rule', !shown);
    });
  }

  // --- "Add option" groups ----------------------------------------------------------------------------
  function setOption(field, on) {
    field.querySelector('.option-marker').disabled = !on;
    field.hidden = !on;
    if (on) applyDisplayWhen(field.closest('form'));
    refreshOptionMenu(field.closest('.option-collection'));
  }

  function refreshOptionMenu(group) {
    if (!group) return;
    const menu = group.querySelector('.option-add');
    menu.querySelectorAll('option[value]').forEach((option) => {
      if (!option.value) return;
      const field = group.querySelector(`.field[data-field="${CSS.escape(option.value)}"]`);
      option.hidden = option.disabled = Boolean(field && !field.querySelector('.option-marker').disabled);
    });
  }

  // --- dynamic options --------------------------------------------------------------------------------
  const loads = new WeakMap();

  async function loadOptions(box, refresh) {
    const status = box.querySelector('.options-status');
    const select = box.querySelector('.options-select');
    const query = box.querySelector('.options-search').value;
    const url = new URL(box.dataset.url, location.href);
    if (query) url.searchParams.set('q', query);
    if (refresh) url.searchParams.set('refresh', '1');
    const ticket = {};
    loads.set(box, ticket);
    status.textContent = 'Loading…';
    box.classList.remove('options-failed');
    try {
      const response = await fetch(url, { headers: { Accept: 'application/json' } });
      const body = await response.json().catch(() => ({ error: `The choices could not be loaded (HTTP ${response.status}).` }));
      if (loads.get(box) !== ticket) return;
      if (!response.ok || body.error) throw new Error(body.error || `The choices could not be loaded (HTTP ${response.status}).`);
      const current = select.value || box.dataset.value;
      const options = [new Option('Choose…', '')];
      let found = false;
      for (const choice of body.choices) {
        const option = new Option(choice.label, choice.value);
        if (String(choice.value) === String(current)) { option.selected = true; found = true; }
        options.push(option);
      }
      if (current && !found) options.push(Object.assign(new Option(`${current} (current)`, current), { selected: true }));
      select.replaceChildren(...options);
      status.textContent = body.choices.length ? `${body.choices.length} choice${body.choices.length === 1 ? '' : 's'}` : 'No choices match.';
    } catch (err) {
      if (loads.get(box) !== ticket) return;
      box.classList.add('options-failed');
      status.textContent = `${err.message} You can still enter an id by hand.`;
    }
  }

  function setManual(box, manual) {
    const select = box.querySelector('.options-select');
    const input = box.querySelector('.options-manual-input');
    if (manual) input.value = input.value || select.value;
    select.disabled = manual;
    input.disabled = input.hidden = !manual;
    if (manual) input.focus();
  }

  // --- wiring -------------------------------------------------------------------------------------------
  document.addEventListener('click', (e) => {
    const target = e.target.closest('button');
    if (!target) return;
    if (target.classList.contains('condition-add')) addCondition(target);
    else if (target.classList.contains('rule-add')) addRule(builderOf(target));
    else if (target.classList.contains('rule-remove')) {
      const builder = builderOf(target);
      target.closest('.condition-rule').remove();
      numberPorts(builder);
      changed(builder.querySelector('input[type=hidden]'));
    } else if (target.classList.contains('condition-remove')) {
      const builder = builderOf(target);
      target.closest('.condition-row').remove();
      numberPorts(builder);
      changed(builder.querySelector('input[type=hidden]'));
    } else if (target.classList.contains('kv-add')) addKeyValue(target);
    else if (target.classList.contains('kv-remove')) {
      const table = target.closest('table.kv');
      target.closest('tr').remove();
      numberRows(table);
      changed(table);
    } else if (target.classList.contains('option-remove')) setOption(target.closest('.field'), false);
    else if (target.classList.contains('options-refresh')) loadOptions(target.closest('.dynamic-options'), true);
  });

  document.addEventListener('change', (e) => {
    const el = e.target;
    if (el.classList.contains('condition-type')) fillOperators(el.closest('.condition-row'));
    else if (el.classList.contains('condition-operator')) showValue(el.closest('.condition-row'));
    else if (el.classList.contains('option-add') && el.value) {
      const field = el.closest('.option-collection').querySelector(`.field[data-field="${CSS.escape(el.value)}"]`);
      el.value = '';
      setOption(field, true);
      const input = field.querySelector('input:not([type=hidden]), select, textarea');
      if (input) input.focus();
    } else if (el.classList.contains('options-manual')) setManual(el.closest('.dynamic-options'), el.checked);
    if (el.form && el.form.classList.contains('node-form')) applyDisplayWhen(el.form);
  });

  const searchTimers = new WeakMap();
  document.addEventListener('input', (e) => {
    const el = e.target;
    if (el.classList.contains('json-editor')) checkJson(el);
    else if (el.classList.contains('options-search')) {
      const box = el.closest('.dynamic-options');
      clearTimeout(searchTimers.get(box));
      searchTimers.set(box, setTimeout(() => loadOptions(box, false), 250));
    }
  });

  // Tab in a code area inserts two spaces instead of leaving the field (Shift+Tab still leaves it).
  document.addEventListener('keydown', (e) => {
    const area = e.target;
    if (e.key !== 'Tab' || e.shiftKey || !area.matches('textarea.code')) return;
    e.preventDefault();
    area.setRangeText('  ', area.selectionStart, area.selectionEnd, 'end');
    changed(area);
  });

  function wire(root) {
    root.querySelectorAll('.dynamic-options:not([data-wired])').forEach((box) => {
      box.dataset.wired = '1';
      loadOptions(box, false);
    });
    root.querySelectorAll('.option-collection').forEach(refreshOptionMenu);
    root.querySelectorAll('form.node-form').forEach(applyDisplayWhen);
  }
  document.addEventListener('htmx:after:swap', () => wire(document));
  document.addEventListener('DOMContentLoaded', () => {
    wire(document);
    const panel = document.getElementById('panel');
    if (panel) new MutationObserver(() => wire(panel)).observe(panel, { childList: true });
  });
})();
