// Live updates for the dashboard: reads the event stream, re-fetches the server-rendered panels when
// something changed (at most a few times a second), and sends retry/cancel with the operator's key.
// Panels arrive as HTML rendered and escaped by the server; job data is never inserted as markup here.
(function () {
  "use strict";
  const KEY_STORE = "supaworker.key";
  const REFRESH_MIN_MS = 400;
  const RECONNECT_MS = 2000;
  const body = document.body;
  const live = document.getElementById("live");
  const flash = document.getElementById("flash");
  let key = sessionStorage.getItem(KEY_STORE) || "";
  let lastRefresh = 0;
  let refreshTimer = null;
  let streamAbort = null;

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    if (key) h["Authorization"] = "Bearer " + key;
    return h;
  }

  function say(text, isError) {
    flash.textContent = text;
    flash.className = isError ? "error" : "ok";
  }

  function setLive(on, text) {
    live.textContent = text;
    live.className = "live " + (on ? "on" : "off");
  }

  function filterQuery() {
    const form = document.getElementById("filters");
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (value) params.set(name, value);
    return params.toString();
  }

  async function refresh() {
    refreshTimer = null;
    lastRefresh = Date.now();
    const q = filterQuery();
    const response = await fetch("/test-worker/panels" + (q ? "?" + q : ""), { headers: headers() });
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      say("could not load panels: " + (problem.error || response.status), true);
      return;
    }
    const data = await response.json();
    for (const [name, html] of Object.entries(data.panels)) {
      const el = document.getElementById("panel-" + name);
      if (el) el.innerHTML = html; // server-rendered, escaped by the template engine
    }
    body.dataset.seq = String(data.seq);
    const need = document.getElementById("need-key");
    if (need) need.hidden = true;
  }

  function scheduleRefresh() {
    if (refreshTimer) return;
    const wait = Math.max(0, REFRESH_MIN_MS - (Date.now() - lastRefresh));
    refreshTimer = setTimeout(() => refresh().catch((e) => say("refresh failed: " + e, true)), wait);
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
          for (const line of message.split("\n")) if (line.startsWith("event: ")) name = line.slice(7);
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

  async function act(button) {
    const { kind, action, id } = button.dataset;
    if (!key) {
      say("enter the API key above to " + action + " a " + kind, true);
      document.getElementById("key").focus();
      return;
    }
    button.disabled = true;
    const path = "/api/" + kind + "s/" + encodeURIComponent(id) + "/" + action;
    const response = await fetch(path, { method: "POST", headers: headers() });
    const result = await response.json().catch(() => ({}));
    if (response.ok) {
      say(kind + " " + id + ": " + action + " done", false);
    } else {
      say(kind + " " + id + ": " + (result.error || "failed with " + response.status), true);
      button.disabled = false;
    }
    scheduleRefresh();
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.act");
    if (button) act(button).catch((e) => say(String(e), true));
  });
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    key = document.getElementById("key").value.trim();
    sessionStorage.setItem(KEY_STORE, key);
    document.getElementById("key").value = "";
    say(key ? "key set for this tab" : "key cleared", false);
    restartStream();
    scheduleRefresh();
  });
  document.getElementById("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const q = filterQuery();
    history.replaceState(null, "", location.pathname + (q ? "?" + q : ""));
    refresh().catch((e) => say("refresh failed: " + e, true));
  });

  stream();
})();
