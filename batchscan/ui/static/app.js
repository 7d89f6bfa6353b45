// batchscan UI: the few things a server-rendered page cannot do alone.
// Text from the server is only ever inserted with textContent, never as HTML.
"use strict";
(function () {
  const token = document.querySelector('meta[name="batchscan-token"]').content;

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Batchscan-Token": token },
      body: JSON.stringify(body || {}),
      credentials: "same-origin",
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    if (!response.ok) throw new Error(data.error || ("HTTP " + response.status));
    return data;
  }

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  // --- setup page: server-side checks as targets are typed, submit as JSON -------------
  const setup = document.getElementById("setup");
  if (setup) {
    const targets = document.getElementById("targets");
    const checks = document.getElementById("checks");
    let timer = null;
    async function check() {
      const lines = targets.value.split("\n").map((l) => l.trim()).filter(Boolean);
      checks.replaceChildren();
      for (const line of lines.slice(0, 50)) {
        const item = el("li", line + " — checking…", "checking");
        checks.appendChild(item);
        const response = await fetch("/api/check?path=" + encodeURIComponent(line), { credentials: "same-origin" });
        const data = await response.json();
        item.textContent = line + " — " + data.message;
        item.className = data.ok ? "ok" : "bad";
      }
    }
    targets.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(check, 250); });
    for (const button of document.querySelectorAll("button.recent")) {
      button.addEventListener("click", () => {
        targets.value = (targets.value.trim() ? targets.value.trim() + "\n" : "") + button.dataset.target;
        check();
      });
    }
    setup.addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = new FormData(setup);
      const options = {};
      for (const [key, value] of form.entries()) if (key !== "targets") options[key] = value;
      for (const box of setup.querySelectorAll("input[type=checkbox]")) options[box.name] = box.checked;
      const error = document.getElementById("setup-error");
      error.textContent = "";
      try {
        const data = await post("/api/scans", { targets: targets.value.split("\n"), options: options });
        window.location.href = data.url;
      } catch (e) { error.textContent = e.message; }
    });
  }

  // --- live run page: server-sent events ---------------------------------------------------
  const live = document.getElementById("live");
  if (live) {
    const run = live.dataset.run;
    const line = document.getElementById("live-line");
    const bar = document.getElementById("bar");
    const cancel = document.getElementById("cancel");
    const resume = document.getElementById("resume");
    const state = document.getElementById("state");
    function counts(target, title, data) {
      const box = document.getElementById(target);
      box.replaceChildren(el("b", title + ": "));
      for (const [key, value] of Object.entries(data || {})) box.appendChild(el("span", key + " " + value + "  ", "count c-" + key));
    }
    function mb(bytes) { return (bytes / 1e6).toFixed(1) + " MB"; }
    if (live.dataset.state === "queued" || live.dataset.state === "running") {
      const source = new EventSource("/runs/" + encodeURIComponent(run) + "/events");
      source.addEventListener("progress", (event) => {
        const data = JSON.parse(event.data);
        const p = data.progress || {};
        state.textContent = data.state;
        state.className = "state state-" + data.state;
        if (data.state === "queued") {
          line.textContent = "queued" + (data.position ? " (position " + data.position + ")" : "");
          return;
        }
        const seen = p.seen || 0, done = p.done || 0;
        let text = done + " done / " + seen + (p.walk_done ? "" : "+") + " seen · " + mb(p.bytes || 0) +
          " · " + (p.files_per_second || 0) + " files/s";
        if (p.walk_done && p.eta_seconds !== null && p.eta_seconds !== undefined) text += " · ETA " + Math.ceil(p.eta_seconds) + " s";
        line.textContent = text;
        live.dataset.done = String(done);
        bar.style.width = (p.walk_done && seen ? Math.min(100, 100 * done / seen) : 5) + "%";
        counts("live-status", "status", p.by_status);
        counts("live-severity", "max severity", p.by_severity);
        const list = document.getElementById("live-flagged");
        list.replaceChildren();
        for (const f of p.flagged || []) list.appendChild(el("li", (f.max_severity || f.status) + "  " + f.path));
      });
      source.addEventListener("end", (event) => {
        source.close();
        const data = JSON.parse(event.data);
        live.dataset.state = data.state;
        line.textContent = line.textContent + " · " + data.state;
        // The finished page: verdict, cards and table from the records.
        setTimeout(() => window.location.reload(), 300);
      });
    }
    if (cancel) cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try { await post("/api/runs/" + encodeURIComponent(run) + "/cancel"); line.textContent += " · cancelling"; }
      catch (e) { line.textContent = e.message; cancel.disabled = false; }
    });
    if (resume) resume.addEventListener("click", async () => {
      resume.disabled = true;
      try { await post("/api/runs/" + encodeURIComponent(run) + "/resume"); window.location.reload(); }
      catch (e) { line.textContent = e.message; resume.disabled = false; }
    });
  }

  // --- file page: triage ---------------------------------------------------------------------
  for (const form of document.querySelectorAll("form.triage")) {
    const error = form.querySelector(".error");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      try {
        await post(form.dataset.url, { index: Number(form.dataset.index), state: data.get("state"),
          reason: data.get("reason"), expires: data.get("expires") || null });
        window.location.reload();
      } catch (e) { error.textContent = e.message; }
    });
    const clear = form.querySelector(".untriage");
    if (clear) clear.addEventListener("click", async () => {
      try { await post(form.dataset.url, { index: Number(form.dataset.index), clear: true }); window.location.reload(); }
      catch (e) { error.textContent = e.message; }
    });
  }
})();
