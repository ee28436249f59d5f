// The canvas's own toolbar (undo history of its strokes, moving them, sending by hand) does not apply here: every
// stroke lands in the mask at once, and the page's Undo takes back whole strokes, shapes and fills.
(() => {
  if (window.maskloopCanvasToolbar) return;
  window.maskloopCanvasToolbar = true;
  const hide = () => document.querySelectorAll('[class*="st-key-annotate_canvas"] *').forEach((el) => {
    const root = el.shadowRoot;
    if (root && !root.querySelector('style[data-maskloop]')) {
      const style = document.createElement('style');
      style.dataset.maskloop = '1';
      style.textContent = '.dc-toolbar { display: none !important; }';
      root.appendChild(style);
    }
  });
  // A custom element may attach its shadow root after it entered the page, which no observer of the page sees:
  // the poll catches it.
  new MutationObserver(hide).observe(document.body, {childList: true, subtree: true});
  hide();
  setInterval(hide, 250);
})();

// A stroke started while the page is still catching up with a click elsewhere (a new tool or class, a button) or
// with a tool that empties the canvas after it acts is held, and drawn the moment the page is ready: it then lands
// with the pen the person picked, and an emptying of the canvas cannot cut it short.
(() => {
  if (window.maskloopStrokeHold) return;
  window.maskloopStrokeHold = true;
  const EMPTIES = __EMPTIES_CANVAS__;
  const PENS = ['annotate_tool', 'annotate_class'];
  const LAG_MS = 200;          // the canvas sends a stroke this long after the mouse is released, not sooner
  const PICK_MS = 150;         // a radio shows the pen picked within this time of the press
  const NO_RUN_MS = 1000;      // a click that started no run: nothing to wait for
  const GIVE_UP_MS = 15000;    // a page that never showed the new pen
  const REPLAY_GAP_MS = 40;    // the person's pauses, shortened: a polygon's corner needs a frame before the next
  let runStart = 0, runEnd = 0;
  let queue = [], busyUntil = 0, timer = null, replaying = false, gestureTool = null;
  const app = () => document.querySelector('[data-testid="stApp"]');
  const busy = () => ['running', 'rerunRequested'].includes(app()?.getAttribute('data-test-script-state'));
  new MutationObserver(() => {
    if (busy()) { if (runEnd >= runStart) runStart = performance.now(); }
    else if (runStart > runEnd) runEnd = performance.now();
  }).observe(document.documentElement, {attributes: true, subtree: true, attributeFilter: ['data-test-script-state']});
  const canvasOf = (ev) => ev.composedPath().find((el) => el instanceof HTMLCanvasElement
      && el.classList.contains('upper-canvas')
      && el.getRootNode()?.host?.closest?.('[class*="st-key-annotate_canvas"]'));
  const currentCanvas = () => {   // a Save or another image mounts a new canvas meanwhile
    for (const box of document.querySelectorAll('[class*="st-key-annotate_canvas"]')) {
      for (const el of box.querySelectorAll('*')) {
        const c = el.shadowRoot?.querySelector('canvas.upper-canvas');
        if (c) return c;
      }
    }
    return null;
  };
  const option = (key, value) => document.querySelector(`.st-key-${key} input[type=radio][value="${value}"]`);
  const onPen = (ev) => PENS.some((k) => ev.target.closest?.(`.st-key-${k}`));
  const checked = (key) => document.querySelector(`.st-key-${key} input[type=radio]:checked`)?.value;
  // The pen the person picked (the radios change at once) against the one the canvas has (the page writes it
  // beside the canvas once the canvas has it).
  const picked = () => PENS.map(checked).join('|');
  const shown = () => document.querySelector('[data-maskloop-pen]')?.dataset.maskloopPen;
  const tool = () => option('annotate_tool', checked('annotate_tool'))?.closest('label')?.innerText.trim();
  // The marker beside the canvas is written in the same page update as the canvas's new pen, but the canvas takes
  // it up a moment later (after the page has drawn): the marker counts once two frames have passed since it changed.
  let frames = 0, lastShown = null, shownAt = 0;
  const tick = () => { frames += 1; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  const penReady = () => {
    const now = shown();
    if (now !== lastShown) { lastShown = now; shownAt = frames; }
    return picked() === now && frames - shownAt >= 2;
  };
  // Whether the canvas holds no strokes: what a run of a tool that empties it leaves. Its strokes are drawn on the
  // lower layer (the photo lies on a canvas of its own), so that layer is blank then.
  const blank = () => {
    const top = currentCanvas(), lower = top?.parentElement?.querySelector('canvas.lower-canvas');
    if (!lower || !lower.width || !lower.height) return true;
    const data = lower.getContext('2d', {willReadFrequently: true}).getImageData(0, 0, lower.width, lower.height).data;
    for (let i = 3; i < data.length; i += 4) if (data[i]) return false;
    return true;
  };
  // What the page is catching up with: a pen picked (until the canvas has it), a click elsewhere (until a run has
  // come and gone) or a stroke of a tool whose run empties the canvas (until that run emptied it: a run of a click
  // elsewhere can come and go before it, and a stroke drawn then would be emptied away with the tool's own).
  let waits = [];
  const waiting = () => {
    const now = performance.now(), idle = !busy();
    waits = waits.filter((w) => {
      if (now < w.from || !idle) return true;
      const since = now - w.from, ran = runStart >= w.from && runEnd > runStart;
      // (A radio shows its new pen a moment after the click: until then it proves nothing.)
      if (w.kind === 'pen' ? penReady() && since > PICK_MS : ran && (w.kind !== 'empties' || blank())) return false;
      return since <= (ran || w.kind === 'pen' ? GIVE_UP_MS : NO_RUN_MS);
    });
    return waits.length > 0;
  };
  const wait = (lag, kind = 'run') => { waits.push({from: performance.now() + lag, kind}); };
  const dispatch = (canvas, e) => {
    replaying = true;
    try {
      canvas.dispatchEvent(new MouseEvent(e.type, {
        bubbles: true, composed: true, cancelable: true, view: window, clientX: e.clientX, clientY: e.clientY,
        screenX: e.screenX, screenY: e.screenY, button: e.button, buttons: e.buttons, detail: e.detail}));
    } finally { replaying = false; }
  };
  const next = () => {   // the queue's first item, once the page is ready for it
    timer = null;
    if (!queue.length) return;
    if (waiting() || performance.now() < busyUntil || queue[0].open) { timer = setTimeout(next, 30); return; }
    const item = queue.shift();
    const canvas = item.canvas.isConnected ? item.canvas : currentCanvas();
    item.canvas.style.cursor = '';
    if (canvas) {
      let at = 0;
      item.events.forEach((e, i) => {
        at += i ? Math.min(REPLAY_GAP_MS, Math.max(0, e.timeStamp - item.events[i - 1].timeStamp)) : 0;
        setTimeout(() => dispatch(canvas, e), at);
      });
      busyUntil = performance.now() + at + 5;
      if (EMPTIES.includes(tool())) wait(at + LAG_MS, 'empties');   // drawn with the pen shown now
    }
    timer = setTimeout(next, 30);
  };
  const start = () => {
    if (!timer) timer = requestAnimationFrame(() => requestAnimationFrame(() => { timer = setTimeout(next, 30); }));
  };
  const holding = () => queue.length > 0 || waiting() || performance.now() < busyUntil;
  const stop = (ev) => { ev.stopImmediatePropagation(); ev.preventDefault(); };
  const hold = (ev, item) => {   // an event of a stroke that waits its turn (a click is only the end of a press)
    if (ev.type !== 'click' && ev.type !== 'dblclick') item.events.push(ev);
    if (ev.type === 'mouseup') item.open = false;
    stop(ev);
    start();
  };
  window.addEventListener('mousedown', (ev) => {
    if (replaying) return;
    const canvas = canvasOf(ev);
    if (!canvas) {
      if (onPen(ev)) wait(0, 'pen');
      else if (ev.target.closest?.('button, label, input, [role="slider"], [role="option"], '
                                            + '[data-baseweb="select"]')) wait(0);
      return;
    }
    if (holding()) {
      const item = {canvas, events: [], open: true};
      queue.push(item);
      canvas.style.cursor = 'progress';
      return hold(ev, item);
    }
    gestureTool = tool();
  }, true);
  for (const type of ['mousemove', 'mouseup', 'click', 'dblclick']) {
    window.addEventListener(type, (ev) => {
      if (replaying) return;
      const last = queue[queue.length - 1];
      if (last?.open) return hold(ev, last);
      if (performance.now() < busyUntil && (type === 'mousemove' || canvasOf(ev))) return stop(ev);   // mid-replay
      if (type === 'mouseup' && gestureTool !== null) {
        if (EMPTIES.includes(gestureTool)) wait(LAG_MS, 'empties');   // its run empties the canvas: hold what follows
        gestureTool = null;
      }
    }, true);
  }
})();
