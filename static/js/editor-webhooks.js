// The Webhook node's panel (docs/triggers.md, "Listening and replay"): Copy of the URL, and the canvas watching the
// execution that a request heard by Listen started. The panel, Listen's long-poll and Replay are server-rendered
// htmx (templates/webhooks/); this file only wires what htmx cannot.
(function () {
  'use strict';
  const root = document.getElementById('editor-root');
  const panel = document.getElementById('panel');
  if (!root || !panel) return;
  const workflowId = root.dataset.workflowId;

  // --- Copy the URL -----------------------------------------------------------------------------------------
  async function writeClipboard(input) {
    if (navigator.clipboard && window.isSecureContext) {
      try { await navigator.clipboard.writeText(input.value); return true; } catch (error) { /* fall back below */ }
    }
    input.focus();
    input.select();
    return document.execCommand('copy');
  }

  panel.addEventListener('click', async (e) => {
    const button = e.target.closest('button.webhook-copy');
    if (!button) return;
    const input = document.getElementById(button.dataset.copy);
    const note = document.getElementById(button.getAttribute('aria-describedby'));
    if (!input) return;
    const copied = await writeClipboard(input);
    if (note) note.textContent = copied ? 'Copied. ' : 'Not copied: select the URL and copy it. ';
  });

  // --- Listen heard a request: the canvas follows its execution like a run started here --------------------
  function watchHeard() {
    const heard = panel.querySelector('#webhook-listen-result .webhook-heard[data-execution-id]:not([data-watched])');
    if (!heard) return;
    heard.dataset.watched = 'true';
    const executionId = heard.dataset.executionId;
    if (!executionId) return;
    htmx.ajax('GET', `/workflows/${workflowId}/executions/${executionId}/watch`,
      { target: '#run-panel', swap: 'innerHTML' });
  }
  document.addEventListener('htmx:after:swap', watchHeard);
  new MutationObserver(watchHeard).observe(panel, { childList: true, subtree: true });

  // --- the workflow was activated or deactivated (toolbar switch, publish): the panel's state follows --------
  const activeNow = () => {
    const toggle = document.getElementById('active-toggle');
    return toggle ? toggle.getAttribute('aria-checked') : null;
  };
  let active = activeNow();
  document.addEventListener('htmx:after:swap', () => {
    const now = activeNow();
    if (now === active) return;
    active = now;
    const section = document.getElementById('webhook-panel');
    if (section && section.dataset.webhookUrl) {
      htmx.ajax('GET', section.dataset.webhookUrl, { target: '#webhook-panel', swap: 'outerHTML' });
    }
  });
})();
