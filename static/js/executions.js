// The executions table: the duration of a running execution counts up (the server sends its start time).
setInterval(() => {
  const now = Date.now() / 1000;
  for (const cell of document.querySelectorAll('[data-running-since]')) {
    const seconds = Math.max(0, now - parseFloat(cell.dataset.runningSince));
    cell.textContent = seconds < 10 ? `${Math.round(seconds * 1000)} ms…` : `${seconds.toFixed(1)} s…`;
  }
}, 1000);
