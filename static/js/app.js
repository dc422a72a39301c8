// A live-status socket that reconnects asks for the events after the last one applied
// (the server replays them from the database: no gaps, no duplicates).
document.addEventListener('htmx:ws:before:connection', (event) => {
  const seq = document.getElementById('pw-seq');
  const connection = event.detail.connection;
  if (!seq || !connection || !connection.url || seq.dataset.seq === '0') return;
  const url = new URL(connection.url);
  url.searchParams.set('after', seq.dataset.seq);
  connection.url = url.toString();
});

// Small page-wide behaviour. The CSRF header for htmx comes from hx-headers:inherited on <body>.
document.addEventListener('click', (event) => {
  const flash = document.getElementById('flash');
  if (flash && flash.contains(event.target)) flash.innerHTML = '';
});

// A plain form that destroys something asks first (data-confirm="…"); htmx forms use hx-confirm.
document.addEventListener('submit', (event) => {
  const message = event.target instanceof HTMLFormElement && event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
