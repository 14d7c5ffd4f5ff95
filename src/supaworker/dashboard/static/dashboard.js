// The console's script: live updates over the event stream, ticking clocks, and actions sent with the
// operator's key. Panels arrive as HTML rendered and escaped by the server; they are patched into the page in
// place (elements kept, so scroll positions, focus, open details and selections survive), and job data is
// never inserted as markup here.
(function () {
  "use strict";
  const KEY_STORE = "supaworker.key";
  const REFRESH_MIN_MS = 400;
  const RECONNECT_MS = 2000;
  const body = document.body;
  const live = document.getElementById("live");
  const flash = document.getElementById("flash");
  const picked = new Set();
  let key = sessionStorage.getItem(KEY_STORE) || "";
  let skew = 0; // database clock minus this browser's, in seconds
  let lastRefresh = 0;
  let refreshTimer = null;
  let streamAbort = null;

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    if (key) h["Authorization"] = "Bearer " + key;
    return h;
  }

  // -- stored text ---------------------------------------------------------------------------------------
  // Bidirectional controls reorder the text after them, so a stored text could disguise itself and what
  // surrounds it. As on the server's pages (render.py), each shows as a styled marker, `<U+202E>`, and stored
  // text sits in a <bdi>: the nodes built here match the server's, so a refresh finds nothing to change.
  const BIDI_CONTROLS = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
  const BIDI_MARK_TITLE = "a bidirectional control character, shown, not applied";

  function bidiMarker(char) {
    return "<U+" + char.codePointAt(0).toString(16).toUpperCase().padStart(4, "0") + ">";
  }

  // The text as nodes: its runs as text, each bidi control as its marker.
  function marked(text) {
    const nodes = [];
    let from = 0;
    for (const m of text.matchAll(BIDI_CONTROLS)) {
      if (m.index > from) nodes.push(document.createTextNode(text.slice(from, m.index)));
      const mark = document.createElement("span");
      mark.className = "bidi-mark";
      mark.title = BIDI_MARK_TITLE;
      mark.textContent = bidiMarker(m[0]);
      nodes.push(mark);
      from = m.index + m[0].length;
    }
    if (from < text.length) nodes.push(document.createTextNode(text.slice(from)));
    return nodes;
  }

  function storedText(text) {
    const bdi = document.createElement("bdi");
    bdi.append(...marked(text));
    return bdi;
  }

  function say(text, isError) {
    flash.replaceChildren(...marked(String(text))); // a message may quote stored text
    flash.className = isError ? "error" : "ok";
  }

  function setLive(on, text) {
    live.textContent = text;
    live.className = "live " + (on ? "on" : "off");
  }

  function setClock(dbNow) {
    const t = parseFloat(dbNow);
    if (!isNaN(t)) skew = t - Date.now() / 1000;
  }

  // -- clocks ------------------------------------------------------------------------------------------
  function duration(seconds) {
    seconds = Math.max(seconds, 0);
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 120) return seconds.toFixed(1) + " s";
    if (seconds < 7200) return (seconds / 60).toFixed(1) + " min";
    if (seconds < 172800) return (seconds / 3600).toFixed(1) + " h";
    return (seconds / 86400).toFixed(1) + " d";
  }

  function tick() {
    const now = Date.now() / 1000 + skew;
    for (const el of document.querySelectorAll("time[data-since]")) {
      const t = parseFloat(el.dataset.since);
      if (!isNaN(t)) el.textContent = duration(now - t);
    }
    for (const el of document.querySelectorAll("time[data-until]")) {
      const t = parseFloat(el.dataset.until);
      if (!isNaN(t)) el.textContent = t > now ? "in " + duration(t - now) : "due";
    }
  }

  // -- patching panels in place -------------------------------------------------------------------------
  function keyOf(node) {
    return node.nodeType === 1 ? node.getAttribute("data-key") || node.id || null : null;
  }

  function sameKind(a, b) {
    return a.nodeType === b.nodeType && a.nodeName === b.nodeName && keyOf(a) === keyOf(b);
  }

  function patchAttributes(from, to) {
    for (const attr of Array.from(from.attributes)) {
      if (!to.hasAttribute(attr.name) && !(from.nodeName === "DETAILS" && attr.name === "open")) {
        from.removeAttribute(attr.name);
      }
    }
    for (const attr of Array.from(to.attributes)) {
      if (from.nodeName === "DETAILS" && attr.name === "open") continue; // the reader's choice stays
      if (from.getAttribute(attr.name) !== attr.value) from.setAttribute(attr.name, attr.value);
    }
    if (from.nodeName === "PROGRESS" && to.hasAttribute("value")) from.value = parseFloat(to.getAttribute("value"));
  }

  function patch(from, to) {
    if (from.nodeType === 3 || from.nodeType === 8) {
      if (from.nodeValue !== to.nodeValue) from.nodeValue = to.nodeValue;
      return;
    }
    if (from.isEqualNode(to)) return;
    patchAttributes(from, to);
    patchChildren(from, to);
  }

  function patchChildren(from, to) {
    const keyed = new Map();
    for (const child of Array.from(from.childNodes)) {
      const k = keyOf(child);
      if (k) keyed.set(k, child);
    }
    const wanted = Array.from(to.childNodes);
    for (let i = 0; i < wanted.length; i++) {
      const next = wanted[i];
      const k = keyOf(next);
      const current = from.childNodes[i] || null;
      let match = k ? keyed.get(k) : current && !keyOf(current) ? current : null;
      if (match && !sameKind(match, next)) match = null;
      if (match) {
        if (match !== current) from.insertBefore(match, current);
        patch(match, next);
        if (k) keyed.delete(k);
      } else {
        from.insertBefore(next.cloneNode(true), current);
      }
    }
    while (from.childNodes.length > wanted.length) from.removeChild(from.lastChild);
  }

  function morph(target, html) {
    const template = document.createElement("template");
    template.innerHTML = html; // server-rendered, escaped by the template engine
    patchChildren(target, template.content);
  }

  // -- refreshing ---------------------------------------------------------------------------------------
  function panelsUrl() {
    if (body.dataset.page !== "overview") return body.dataset.panels;
    const form = document.getElementById("filters");
    const params = new URLSearchParams();
    if (form) for (const [name, value] of new FormData(form)) if (value) params.set(name, value);
    const q = params.toString();
    return "/test-worker/panels" + (q ? "?" + q : "");
  }

  async function refresh() {
    refreshTimer = null;
    lastRefresh = Date.now();
    const response = await fetch(panelsUrl(), { headers: headers() });
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      say("could not load the page: " + (problem.error || response.status), true);
      return;
    }
    const data = await response.json();
    setClock(data.db_now);
    for (const [name, html] of Object.entries(data.panels)) {
      const el = document.getElementById("panel-" + name);
      if (el) morph(el, html);
    }
    body.dataset.seq = String(data.seq);
    const need = document.getElementById("need-key");
    if (need) need.hidden = true;
    restorePicks();
    tick();
  }

  function scheduleRefresh() {
    if (refreshTimer) return;
    const wait = Math.max(0, REFRESH_MIN_MS - (Date.now() - lastRefresh));
    refreshTimer = setTimeout(() => refresh().catch((e) => say("refresh failed: " + e, true)), wait);
  }

  function applyProgress(list) {
    for (const p of list || []) {
      for (const bar of document.querySelectorAll('progress[data-progress-job="' + p.id + '"]')) bar.value = p.progress;
      for (const text of document.querySelectorAll('[data-progress-text="' + p.id + '"]')) {
        text.replaceChildren(Math.round(p.progress) + "%" + (p.message ? " · " : ""));
        if (p.message) text.append(storedText(String(p.message)));
      }
    }
  }

  // EventSource cannot send an Authorization header, so the stream is read with fetch.
  async function stream() {
    streamAbort = new AbortController();
    try {
      const response = await fetch("/api/events", { headers: headers(), signal: streamAbort.signal });
      if (!response.ok) {
        setLive(false, response.status === 401 ? "needs key" : "offline (" + response.status + ")");
        if (response.status === 401) return;
        throw new Error("status " + response.status);
      }
      setLive(true, "live");
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = "message";
          let data = "";
          for (const line of message.split("\n")) {
            if (line.startsWith("event: ")) name = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (name === "change") {
            try {
              applyProgress(JSON.parse(data).progress);
            } catch (e) {
              /* a malformed event only skips the shortcut: the refresh below still comes */
            }
          }
          if (name === "change" || name === "hello") scheduleRefresh();
        }
      }
    } catch (e) {
      if (e.name === "AbortError") return;
    }
    setLive(false, "reconnecting…");
    setTimeout(stream, RECONNECT_MS);
  }

  function restartStream() {
    if (streamAbort) streamAbort.abort();
    stream();
  }

  // -- actions ------------------------------------------------------------------------------------------
  function needKey(what) {
    if (key) return false;
    say("enter the API key above to " + what, true);
    document.getElementById("key").focus();
    return true;
  }

  async function post(path, payload) {
    const response = await fetch(path, {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: payload === undefined ? undefined : JSON.stringify(payload),
    });
    const result = await response.json().catch(() => ({}));
    return { ok: response.ok, status: response.status, result };
  }

  async function act(button) {
    const { kind, action, id } = button.dataset;
    if (needKey(action + " a " + kind)) return;
    button.disabled = true;
    const { ok, status, result } = await post("/api/" + kind + "s/" + encodeURIComponent(id) + "/" + action);
    if (ok) {
      say(kind + " " + id + ": " + action + " done", false);
    } else {
      say(kind + " " + id + ": " + (result.error || "failed with " + status), true);
      button.disabled = false;
    }
    scheduleRefresh();
  }

  async function callApi(button) {
    if (needKey("do that")) return;
    button.disabled = true;
    const { ok, status, result } = await post(button.dataset.path, JSON.parse(button.dataset.body || "{}"));
    say(ok ? "done" : result.error || "failed with " + status, !ok);
    button.disabled = false;
    scheduleRefresh();
  }

  async function submitForm(form) {
    if (needKey("do that")) return;
    const payload = {};
    for (const el of form.elements) {
      if (!el.name || el.value === "") continue;
      payload[el.name] = el.type === "number" ? Number(el.value) : el.value;
    }
    const { ok, status, result } = await post(form.dataset.path, payload);
    say(ok ? "saved" : result.error || "failed with " + status, !ok);
    scheduleRefresh();
  }

  // -- bulk actions on the jobs page --------------------------------------------------------------------
  const bulk = document.getElementById("bulk");
  let pending = null; // the request a preview was made for

  function restorePicks() {
    for (const box of document.querySelectorAll("input.pick")) box.checked = picked.has(box.dataset.id);
    updatePicked();
  }

  function updatePicked() {
    const label = document.getElementById("bulk-picked");
    if (label) label.textContent = picked.size + " selected";
  }

  function bulkRequest(action) {
    const all = document.getElementById("bulk-all").checked;
    if (all) return { action, filter: JSON.parse(bulk.dataset.filter || "{}") };
    if (!picked.size) return null;
    return { action, ids: Array.from(picked, Number) };
  }

  async function bulkPreview(action) {
    if (needKey(action + " jobs")) return;
    const request = bulkRequest(action);
    const result = document.getElementById("bulk-result");
    result.textContent = "";
    if (!request) {
      say("select jobs first, or tick “all jobs matching this search”", true);
      return;
    }
    const answer = await post("/api/jobs/bulk/preview", request);
    if (!answer.ok) {
      say(answer.result.error || "preview failed with " + answer.status, true);
      return;
    }
    const r = answer.result;
    pending = Object.assign({}, request, { through_id: r.through_id });
    document.getElementById("bulk-preview").textContent =
      action + " " + r.count + " job" + (r.count === 1 ? "" : "s") + (r.complete ? "" : " (the first of more: run again after)") + "?";
    document.getElementById("bulk-confirm").hidden = false;
    document.getElementById("bulk-run").disabled = r.count === 0;
    document.getElementById("bulk-run").focus();
  }

  async function bulkRun() {
    if (!pending) return;
    const request = pending;
    pending = null;
    document.getElementById("bulk-confirm").hidden = true;
    const answer = await post("/api/jobs/bulk", request);
    const result = document.getElementById("bulk-result");
    if (answer.ok) {
      result.textContent = request.action + ": " + answer.result.count + " job" + (answer.result.count === 1 ? "" : "s") + " done";
      picked.clear();
      restorePicks();
    } else {
      say(answer.result.error || "failed with " + answer.status, true);
    }
    scheduleRefresh();
  }

  // -- wiring -------------------------------------------------------------------------------------------
  document.addEventListener("click", (event) => {
    const target = event.target;
    const button = target.closest("button.act");
    if (button) return void act(button).catch((e) => say(String(e), true));
    const api = target.closest("button.api");
    if (api) return void callApi(api).catch((e) => say(String(e), true));
    const go = target.closest("button.bulk-go");
    if (go) return void bulkPreview(go.dataset.action).catch((e) => say(String(e), true));
    if (target.id === "bulk-run") return void bulkRun().catch((e) => say(String(e), true));
    if (target.id === "bulk-cancel") {
      pending = null;
      document.getElementById("bulk-confirm").hidden = true;
    }
  });
  document.addEventListener("change", (event) => {
    const box = event.target;
    if (box.matches && box.matches("input.pick")) {
      if (box.checked) picked.add(box.dataset.id);
      else picked.delete(box.dataset.id);
      updatePicked();
    } else if (box.id === "pick-page") {
      for (const each of document.querySelectorAll("input.pick")) {
        each.checked = box.checked;
        if (box.checked) picked.add(each.dataset.id);
        else picked.delete(each.dataset.id);
      }
      updatePicked();
    }
  });
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.id === "key-form") {
      event.preventDefault();
      key = document.getElementById("key").value.trim();
      sessionStorage.setItem(KEY_STORE, key);
      document.getElementById("key").value = "";
      say(key ? "key set for this tab" : "key cleared", false);
      restartStream();
      scheduleRefresh();
    } else if (form.id === "filters") {
      event.preventDefault();
      const url = new URL(panelsUrl(), location.href);
      history.replaceState(null, "", location.pathname + url.search);
      refresh().catch((e) => say("refresh failed: " + e, true));
    } else if (form.classList.contains("api-form")) {
      event.preventDefault();
      submitForm(form).catch((e) => say(String(e), true));
    }
  });

  setClock(body.dataset.dbNow);
  tick();
  setInterval(tick, 1000);
  if (body.dataset.public === "true" || key) {
    if (body.dataset.public !== "true") scheduleRefresh();
    stream();
  } else {
    setLive(false, "needs key"); // nothing to ask the server for until the key is entered
  }
})();
