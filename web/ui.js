// The UI's view library, in one place: Preact (components, keyed diffing), its hooks,
// htm (tagged templates instead of JSX, so there is no build step) and Preact Signals
// (state that components read and re-render on by themselves). All vendored under
// web/vendor/preact/ (see web/vendor/README.md); ARCHITECTURE.md says why these.
//
//   const count = signal(0);
//   render(html`<button onClick=${() => count.value++}>${count}</button>`, host);

import { h, render, Fragment } from "./vendor/preact/preact.module.js";
import htm from "./vendor/preact/htm.module.js";

export { h, render, Fragment };
export { useEffect, useRef, useState, useMemo, useLayoutEffect } from "./vendor/preact/hooks.module.js";
export { signal, computed, effect, batch, useSignal, useComputed } from "./vendor/preact/signals.module.js";

/** htm bound to Preact: html`<p class="x">${text}</p>`. Text is always text, never HTML. */
export const html = htm.bind(h);
