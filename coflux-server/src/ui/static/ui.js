// Coflux web UI: actions through the JSON API, graph pan/zoom, and live run updates (SSE).
// One ES module, no framework. Pages work without it (links and filters are plain HTML).

const TOKEN_KEY = "coflux.token";

/** Calls the JSON API; resolves to the parsed body, rejects with the API's error message. */
async function api(method, url, body) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = data && data.error ? data.error.message : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return data;
}

const enc = encodeURIComponent;

function showError(form, message) {
  const slot = form.querySelector(".form-error");
  if (slot) slot.textContent = message;
  else alert(message);
}

function clearError(form) {
  const slot = form.querySelector(".form-error");
  if (slot) slot.textContent = "";
}

/** Parses a JSON field; marks it invalid and throws with its name when it is not JSON. */
function parseField(field, name) {
  const text = field.value.trim() || field.dataset.default || "";
  if (!text) throw new Error(`${name}: a value is required`);
  try {
    const value = JSON.parse(text);
    field.classList.remove("invalid");
    return value;
  } catch (e) {
    // A class, not setCustomValidity: that would block the next submit before we see it.
    field.classList.add("invalid");
    throw new Error(`${name}: not valid JSON (${e.message})`);
  }
}

const forms = {
  async "sign-in"(form) {
    const token = form.elements.token.value.trim();
    if (!/^[A-Za-z0-9._~+\/=-]+$/.test(token)) throw new Error("that does not look like a token");
    localStorage.setItem(TOKEN_KEY, token);
    // Page loads and the live stream present it as a same-site cookie (reads only).
    document.cookie = `coflux_token=${token}; path=/; SameSite=Strict`;
    location.reload();
  },
  async "create-project"(form) {
    const name = form.elements.name.value.trim();
    await api("POST", "/api/projects", { name });
    location.href = `/projects/${enc(name)}`;
  },
  async "create-environment"(form) {
    const project = form.dataset.project;
    const name = form.elements.name.value.trim();
    const parent = form.elements.parent.value || undefined;
    await api("POST", `/api/projects/${enc(project)}/environments`, { name, parent });
    location.href = `/projects/${enc(project)}?environment=${enc(name)}`;
  },
  async "submit-run"(form) {
    let args = [];
    const whole = form.querySelector("[data-arguments]");
    if (whole) {
      args = whole.value.trim() ? parseField(whole, "arguments") : [];
      if (!Array.isArray(args)) throw new Error("arguments: expected a JSON array");
    } else {
      for (const field of form.querySelectorAll("[data-argument]")) {
        args.push(parseField(field, field.dataset.name));
      }
    }
    const { module, target, project, environment } = form.dataset;
    const run = await api("POST", form.dataset.url, { module, target, arguments: args });
    location.href = `/projects/${enc(project)}/runs/${enc(run.run_id)}?environment=${enc(environment)}`;
  },
  async rerun(form) {
    const environment = form.elements.environment.value;
    if (!confirm(`Re-run step ${form.dataset.step} in '${environment}'?`)) return;
    const result = await api("POST", form.dataset.url, { environment });
    const { project, run, step } = form.dataset;
    await navigate(
      `/projects/${enc(project)}/runs/${enc(run)}?environment=${enc(environment)}` +
        `&step=${enc(step)}&attempt=${result.attempt}`,
    );
  },
};

document.addEventListener("submit", async (event) => {
  const form = event.target.closest("form[data-action]");
  if (!form) return;
  event.preventDefault();
  clearError(form);
  const handler = forms[form.dataset.action];
  const button = form.querySelector("button[type=submit]");
  if (button) button.disabled = true;
  try {
    await handler(form);
  } catch (e) {
    showError(form, e.message);
  } finally {
    if (button) button.disabled = false;
  }
});

// Buttons that POST to the API: data-post=URL, optional data-confirm=question.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-post]");
  if (!button) return;
  if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
  button.disabled = true;
  try {
    await api("POST", button.dataset.post, {});
    // A live run page shows the change by itself; another run page is fetched again.
    if (document.querySelector(".run-page[data-live=true]")) return;
    if (document.querySelector(".run-page")) await navigate(location.href, false);
    else location.reload();
  } catch (e) {
    alert(e.message);
  } finally {
    button.disabled = false;
  }
});

// Graph pan and zoom: the transform lives on the SVG's viewport group (an attribute, not a
// style, so the CSP holds) and survives live swaps.
const view = { x: 0, y: 0, k: 1, set: false };

function applyView() {
  const g = document.querySelector(".graph .viewport");
  if (!g) return;
  g.setAttribute("transform", `translate(${view.x} ${view.y}) scale(${view.k})`);
  // Labels are unreadable when far out, and most of the cost of painting a big graph.
  g.closest("svg").classList.toggle("far", view.k < FAR);
}

/** Below this zoom the labels are hidden. */
const FAR = 0.35;
/** A page opens at least this close (a big graph starts at its root, not all of it). */
const START = 0.6;

function setupGraph() {
  const frame = document.querySelector(".graph-frame");
  if (!frame) return;
  const svg = frame.querySelector("svg");
  svg.setAttribute("width", "100%");
  svg.setAttribute("height", "100%");
  if (!view.set) fit(frame, svg, START);
  applyView();
  if (frame.dataset.ready) return;
  frame.dataset.ready = "1";
  let drag = null;
  let moved = false;
  frame.addEventListener("pointerdown", (e) => {
    drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y };
    moved = false;
  });
  frame.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x;
    const dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) moved = true;
    if (!moved) return;
    view.x = drag.vx + dx;
    view.y = drag.vy + dy;
    applyView();
  });
  const end = () => {
    drag = null;
  };
  frame.addEventListener("pointerup", end);
  frame.addEventListener("pointerleave", end);
  // A drag must not follow the link under the pointer.
  frame.addEventListener(
    "click",
    (e) => {
      if (moved) {
        e.preventDefault();
        e.stopPropagation();
        moved = false;
      }
    },
    true,
  );
  frame.addEventListener(
    "wheel",
    (e) => {
      e.preventDefault();
      const rect = frame.getBoundingClientRect();
      const px = e.clientX - rect.left;
      const py = e.clientY - rect.top;
      const k = Math.min(2, Math.max(0.05, view.k * Math.exp(-e.deltaY * 0.0015)));
      view.x = px - ((px - view.x) * k) / view.k;
      view.y = py - ((py - view.y) * k) / view.k;
      view.k = k;
      applyView();
    },
    { passive: false },
  );
  frame.addEventListener("dblclick", () => {
    fit(frame, frame.querySelector("svg"));
    applyView();
  });
}

function fit(frame, svg, least = 0.05) {
  const w = Number(svg.dataset.width);
  const h = Number(svg.dataset.height);
  const rect = frame.getBoundingClientRect();
  const k = Math.min(1, rect.width / w, rect.height / h);
  view.k = Math.max(least, k);
  view.x = 0;
  view.y = 0;
  view.set = true;
}

// Logs: follow (keep scrolled to the bottom) unless unticked or scrolled up.
let follow = true;

function setupLogs() {
  const frame = document.querySelector(".logs-frame");
  const box = document.querySelector("[data-follow]");
  if (box) {
    box.checked = follow;
    box.addEventListener("change", () => {
      follow = box.checked;
      if (follow && frame) frame.scrollTop = frame.scrollHeight;
    });
  }
  if (!frame) return;
  if (follow) frame.scrollTop = frame.scrollHeight;
  frame.addEventListener("scroll", () => {
    const atBottom = frame.scrollHeight - frame.scrollTop - frame.clientHeight < 4;
    if (follow !== atBottom) {
      follow = atBottom;
      if (box) box.checked = follow;
    }
  });
}

// Live run updates: one EventSource per tab; each fragment replaces the main part.
let source = null;

function setupLive() {
  if (source) source.close();
  source = null;
  const page = document.querySelector(".run-page[data-live=true]");
  if (!page || !window.EventSource) return;
  const url = new URL(page.dataset.events, location.href);
  url.searchParams.set("version", page.dataset.version);
  source = new EventSource(url);
  source.addEventListener("fragment", (event) => {
    const main = document.getElementById("run-main");
    if (!main) return;
    const logs = document.querySelector(".logs-frame");
    const scroll = logs ? logs.scrollTop : 0;
    const template = document.createElement("template");
    template.innerHTML = event.data;
    const next = template.content.firstElementChild;
    if (!next) return;
    main.replaceWith(next);
    page.dataset.version = event.lastEventId;
    setupGraph();
    const newLogs = document.querySelector(".logs-frame");
    if (newLogs && !follow) newLogs.scrollTop = scroll;
    setupLogs();
  });
  source.addEventListener("done", () => {
    source.close();
    page.dataset.live = "false";
  });
}

// Within a run page, links to the same run (tabs, steps, attempts, filters) swap the page's
// main part instead of reloading: the graph keeps its pan and zoom, the stream follows.
async function navigate(href, push = true) {
  const url = new URL(href, location.href);
  const page = document.querySelector(".run-page");
  if (!page || url.pathname !== location.pathname || url.origin !== location.origin) {
    location.href = url.href;
    return;
  }
  const response = await fetch(url, { credentials: "same-origin" });
  const next = new DOMParser()
    .parseFromString(await response.text(), "text/html")
    .querySelector(".run-page");
  if (!next) {
    location.href = url.href;
    return;
  }
  if (push) history.pushState(null, "", url.href);
  page.replaceWith(document.adoptNode(next));
  setupGraph();
  setupLogs();
  setupLive();
}

document.addEventListener("click", (event) => {
  const link = event.target.closest(".run-page a[href]");
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || link.hasAttribute("download")) return;
  const url = new URL(link.getAttribute("href"), location.href);
  if (url.pathname !== location.pathname || url.origin !== location.origin) return;
  event.preventDefault();
  navigate(url.href).catch(() => {
    location.href = url.href;
  });
});

window.addEventListener("popstate", () => {
  if (!document.querySelector(".run-page")) return;
  navigate(location.href, false).catch(() => location.reload());
});

// Live project page: the sidebar and the runs table, replaced by id.
function setupProjectLive() {
  const page = document.querySelector(".project-page[data-events]");
  if (!page || !window.EventSource) return;
  const source = new EventSource(new URL(page.dataset.events, location.href));
  source.addEventListener("fragment", (event) => {
    const template = document.createElement("template");
    template.innerHTML = event.data;
    for (const next of [...template.content.children]) {
      const current = next.id && document.getElementById(next.id);
      if (current) current.replaceWith(next);
    }
    page.dataset.version = event.lastEventId;
  });
}

setupGraph();
setupLogs();
setupLive();
setupProjectLive();

// The page is interactive: a marker for tests and a Performance API mark for timing.
performance.mark("coflux:ready");
document.documentElement.dataset.ready = "true";
