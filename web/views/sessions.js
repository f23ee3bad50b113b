// The session list in the sidebar: a Preact component over signals. The app writes the
// sessions it knows (from `session.list` and the bus) into `list.sessions`; the list
// draws itself, newest first, through the filters (state, engine, working directory)
// and the "Show archived" switch. Items are keyed by session id, so an update never
// replaces the button that has focus.

import { html, render, signal, computed } from "../ui.js";
import { basename, fmtTime } from "../dom.js";

export const STATE_LABELS = {
  idle: "idle",
  busy: "busy",
  waiting_on_approval: "waiting for approval",
  paused: "paused",
  ended: "ended",
  error: "error",
};

const FILTER_KEY = "r1.listFilter";
const NO_FILTER = { state: "", engine: "", workdir: "" };

function savedFilter() {
  try {
    const f = JSON.parse(sessionStorage.getItem(FILTER_KEY) || "null");
    return f && typeof f === "object" ? { ...NO_FILTER, ...f } : NO_FILTER;
  } catch {
    return NO_FILTER;
  }
}

/** The list's state. `sessions`: id → SessionView (+ `updated_at`), replaced on change. */
export const list = {
  sessions: signal(new Map()),
  current: signal(null),
  showArchived: signal(false),
  filter: signal(savedFilter()),
  error: signal(""),
  resuming: signal(false),
};
/** Whether the filter fields are shown: open at start when a filter is set. */
const filtersOpen = signal(Object.values(list.filter.value).some(Boolean));

function newestFirst(a, b) {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.id < b.id ? 1 : -1;
}

/** Every listed session, newest first (archived ones only when shown). */
export const listed = computed(() => {
  const show = list.showArchived.value;
  return Array.from(list.sessions.value.values())
    .filter((s) => show || !s.archived)
    .sort(newestFirst);
});

/** What the filters let through: the list as drawn, in order. */
export const visible = computed(() => {
  const f = list.filter.value;
  return listed.value.filter(
    (s) => (!f.state || s.state === f.state) && (!f.engine || s.engine === f.engine) && (!f.workdir || s.workdir === f.workdir),
  );
});

// ---------------------------------------------------------------------------
// Changes (the app's only way to write the list)

export function getSession(id) {
  return list.sessions.value.get(id);
}

export function hasSession(id) {
  return list.sessions.value.has(id);
}

/** Merges `view` into the session it names; `updatedAt` moves "updated" forward only. */
export function upsert(view, updatedAt) {
  const old = list.sessions.value.get(view.id) || {};
  const merged = { ...old, ...view };
  if (updatedAt && (!merged.updated_at || updatedAt > merged.updated_at)) merged.updated_at = updatedAt;
  const next = new Map(list.sessions.value);
  next.set(view.id, merged);
  list.sessions.value = next;
  return merged;
}

export function remove(id) {
  if (!list.sessions.value.has(id)) return;
  const next = new Map(list.sessions.value);
  next.delete(id);
  list.sessions.value = next;
}

/** The list as `session.list` answered it, keeping what the app learned of each. */
export function replaceAll(views) {
  const old = list.sessions.value;
  list.sessions.value = new Map(views.map((s) => [s.id, { ...(old.get(s.id) || {}), ...s }]));
}

export function setFilter(patch) {
  const f = { ...list.filter.value, ...patch };
  list.filter.value = f;
  sessionStorage.setItem(FILTER_KEY, JSON.stringify(f));
}

// ---------------------------------------------------------------------------
// Drawing

function distinct(values) {
  return Array.from(new Set(values.filter(Boolean))).sort();
}

function Item({ s, current, onOpen }) {
  return html`<li data-session-id=${s.id}>
    <button
      type="button"
      class="session-item"
      data-testid="session-item"
      data-api="session.get"
      data-session-id=${s.id}
      aria-current=${current ? "true" : "false"}
      onClick=${() => onOpen(s.id)}
    >
      <span class="session-row">
        <span class="session-name">${(s.title || basename(s.workdir) || s.id) + (s.archived ? " (archived)" : "")}</span>
        <span class="badge" data-testid="session-state" data-state=${s.state}>${STATE_LABELS[s.state] || s.state}</span>
      </span>
      <span class="session-workdir">${s.workdir}</span>
      <span class="session-times">
        ${s.engine + (s.model ? ` (${s.model})` : "")} · created <time datetime=${s.created_at}>${fmtTime(s.created_at)}</time>
        ${s.updated_at ? html` · updated <time datetime=${s.updated_at}>${fmtTime(s.updated_at)}</time>` : null}
      </span>
    </button>
  </li>`;
}

function Select({ id, label, value, options, all, onChange }) {
  return html`<div class="list-filter">
    <label for=${id}>${label}</label>
    <select id=${id} data-testid=${id} data-api="session.list" value=${value} onChange=${(e) => onChange(e.currentTarget.value)}>
      <option value="">${all}</option>
      ${options.map(([v, text]) => html`<option key=${v} value=${v}>${text}</option>`)}
    </select>
  </div>`;
}

function SessionList({ actions }) {
  const shown = listed.value;
  const rows = visible.value;
  const f = list.filter.value;
  const current = list.current.value;
  const paused = shown.some((s) => s.state === "paused");
  const filtered = !!(f.state || f.engine || f.workdir);
  // A filter's options: what the listed sessions have, plus the value chosen (so a
  // choice never vanishes from under the user).
  const states = distinct([...shown.map((s) => s.state), f.state]).map((v) => [v, STATE_LABELS[v] || v]);
  const engines = distinct([...shown.map((s) => s.engine), f.engine]).map((v) => [v, v]);
  const workdirs = distinct([...shown.map((s) => s.workdir), f.workdir]).map((v) => [v, v]);
  return html`
    <button
      type="button"
      id="resume-all"
      class="btn btn-small"
      data-testid="resume-all"
      data-api="session.resume_all"
      hidden=${!paused}
      disabled=${list.resuming.value}
      onClick=${actions.resumeAll}
    >
      Resume all paused
    </button>
    <p id="list-error" class="alert" data-testid="list-error" role="alert" hidden=${!list.error.value}>${list.error.value}</p>
    <details class="list-filters" open=${filtersOpen.value} onToggle=${(e) => (filtersOpen.value = e.currentTarget.open)} data-testid="list-filters">
      <summary data-testid="list-filters-toggle" data-api="session.list">Filter${filtered ? ` (${rows.length} of ${shown.length})` : ""}</summary>
      <div class="list-filter-fields" role="group" aria-label="Filter sessions">
        <${Select} id="filter-state" label="State" value=${f.state} options=${states} all="Any state" onChange=${(v) => setFilter({ state: v })} />
        <${Select} id="filter-engine" label="Engine" value=${f.engine} options=${engines} all="Any engine" onChange=${(v) => setFilter({ engine: v })} />
        <${Select}
          id="filter-workdir"
          label="Working directory"
          value=${f.workdir}
          options=${workdirs}
          all="Any directory"
          onChange=${(v) => setFilter({ workdir: v })}
        />
        <button type="button" class="btn btn-small" data-testid="filter-clear" data-api="session.list" disabled=${!filtered} onClick=${() => setFilter(NO_FILTER)}>
          Clear filters
        </button>
      </div>
    </details>
    <label class="show-archived">
      <input
        type="checkbox"
        id="show-archived"
        data-testid="show-archived"
        data-api="session.list"
        checked=${list.showArchived.value}
        onChange=${(e) => actions.showArchived(e.currentTarget.checked)}
      />
      Show archived
    </label>
    <p id="list-empty" class="muted" data-testid="list-empty" hidden=${rows.length > 0}>
      ${shown.length && filtered ? "No session matches the filters." : "No sessions yet. Start one to begin."}
    </p>
    <ul id="session-list" class="session-list" data-testid="session-list" aria-label="Sessions">
      ${rows.map((s) => html`<${Item} key=${s.id} s=${s} current=${s.id === current} onOpen=${actions.open} />`)}
    </ul>
  `;
}

/**
 * Draws the list into `host`. `actions`: open(id), resumeAll(), showArchived(on).
 * It then follows the signals by itself.
 */
export function mount(host, actions) {
  render(html`<${SessionList} actions=${actions} />`, host);
}

/** The session after (`step` 1) or before (-1) the current one, as the list shows them. */
export function neighbour(step) {
  const rows = visible.value;
  if (!rows.length) return null;
  const i = rows.findIndex((s) => s.id === list.current.value);
  if (i < 0) return rows[step > 0 ? 0 : rows.length - 1].id;
  return rows[Math.max(0, Math.min(rows.length - 1, i + step))].id;
}
