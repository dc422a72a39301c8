// The home dashboard, live: a signal over /ws/executions/changed whenever the user's executions change
// makes its partials re-fetch at once (their hx-trigger listens for pw:executions-changed); their slow
// poll stays as the fallback while the socket is down. Reconnects with a growing pause.
(() => {
  let pause = 500;
  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(`${scheme}//${location.host}/ws/executions/changed`);
    socket.addEventListener('open', () => { pause = 500; document.body.dataset.live = 'on'; });
    socket.addEventListener('message', () => {
      document.body.dispatchEvent(new CustomEvent('pw:executions-changed'));
    });
    socket.addEventListener('close', () => {
      document.body.dataset.live = 'off';
      setTimeout(connect, pause);
      pause = Math.min(pause * 2, 15000);
    });
  }
  connect();
})();
