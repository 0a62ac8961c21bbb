// The pages. Each renders into `main` from the JSON API; none computes what the library should.
"use strict";

// --- Data ------------------------------------------------------------------------------------------

PAGES.data = async (main, path) => {
  const state = { dir: ".", path: path || "", tab: "samples", offset: 0 };
  const browser = el("aside.browser");
  const controls = el("form.controls", { on: { submit: e => { e.preventDefault(); state.offset = 0; show(); } } },
    field("model", "Model", el("input", { name: "model", value: STATE.model || "" })),
    field("template", "Template", el("input", { name: "template", value: "auto", size: 10 })),
    field("train_on", "Train on", el("select", { name: "train_on" }, ["assistant", "last", "all"].map(v => el("option", { text: v })))),
    field("language", "Language", el("input", { name: "language", placeholder: "en, zh…", size: 6 })),
    field("task", "Task", el("select", { name: "task" }, el("option", { value: "", text: "any" }))),
    field("reason", "Curation reason", el("select", { name: "reason" }, el("option", { value: "", text: "any" }))),
    field("min_chars", "Min chars", el("input", { name: "min_chars", type: "number", min: 0, size: 5 })),
    field("max_chars", "Max chars", el("input", { name: "max_chars", type: "number", min: 0, size: 5 })),
    el("button", { type: "submit", text: "Show" }));
  const tabs = el("div.tabs", {}, ["samples", "report", "rejects"].map(t =>
    el("button.tab", { "data-tab": t, text: t[0].toUpperCase() + t.slice(1), on: { click: () => { state.tab = t; show(); } } })));
  const title = el("h2#data-title", { text: "Pick a dataset" });
  const body = el("div#data-body");
  main.append(el("div.split", {}, browser, el("section.content", {}, title, controls, tabs, body)));

  async function browse(dir) {
    const listing = await api(`/api/files?${query({ dir })}`);
    state.dir = listing.dir;
    const up = listing.dir === "." ? null : el("li", {}, el("a", { href: "#", text: "..", on: { click: e => { e.preventDefault(); guarded(() => browse(listing.dir + "/..")); } } }));
    fill(browser, el("div.muted", { text: listing.dir }), el("ul.files", {}, up, listing.entries.map(e => {
      const rel = listing.dir === "." ? e.name : `${listing.dir}/${e.name}`;
      const open = ev => { ev.preventDefault(); guarded(() => (e.dir && !e.curated ? browse(rel) : openData(rel))); };
      return el("li", {}, el("a", { href: "#", class: e.dir ? "dir" : "file", "data-path": rel, text: e.name + (e.dir ? "/" : ""), on: { click: open } }),
        e.curated ? el("span.badge", { text: "curated" }) : null);
    })));
  }

  function openData(rel) {
    state.path = rel;
    state.offset = 0;
    history.replaceState(null, "", `#data/${encodeURIComponent(rel)}`);
    return show();
  }

  async function show() {
    if (!state.path) return;
    title.textContent = state.path;
    tabs.querySelectorAll("button").forEach(b => b.classList.toggle("active", b.dataset.tab === state.tab));
    fill(body, el("p.muted", { text: "loading…" }));
    const params = Object.fromEntries(new FormData(controls));
    if (state.tab === "report") return showReport(params);
    if (state.tab === "rejects") return showRejects();
    const page = await api(`/api/data/samples?${query({ ...params, path: state.path, offset: state.offset, n: 10 })}`);
    fillSelect(controls.task, page.tasks, params.task);
    fillSelect(controls.reason, page.reasons, params.reason);
    const rejected = Object.entries(page.read_rejected).map(([r, n]) => `${n} ${r}`).join(", ");
    fill(body, 
      el("p.summary", { text: `${page.matched} of ${page.total} samples match · template ${page.template}` +
        ` · ${page.read} records read${rejected ? ` · rejected while reading: ${rejected}` : ""}` }),
      page.note ? el("p.note", { text: page.note }) : null,
      el("p.legend", {}, el("span.trained", { text: "trained" }), " tokens carry loss; ", el("span.given", { text: "given" }), " ones are context"),
      page.samples.map(sampleCard),
      pager(page));
  }

  function pager(page) {
    const prev = el("button", { text: "← previous", disabled: state.offset === 0, on: { click: () => { state.offset = Math.max(0, state.offset - 10); show(); } } });
    const next = el("button", { text: "next →", disabled: state.offset + 10 >= page.matched, on: { click: () => { state.offset += 10; show(); } } });
    return el("div.pager", {}, prev, el("span.muted", { text: ` ${page.offset + 1}–${Math.min(page.offset + 10, page.matched)} ` }), next);
  }

  async function showReport(params) {
    const r = await api(`/api/data/report?${query({ path: state.path, model: params.model })}`);
    fill(body, el("iframe.report", { sandbox: "", srcdoc: r.html, title: "data report" }));
  }

  async function showRejects() {
    const r = await api(`/api/data/rejects?${query({ path: state.path })}`);
    if (!r.total) return fill(body, el("p.muted", { text: "No curation rejects here (open a curated folder or a rejects.jsonl)." }));
    fill(body, el("p.summary", { text: `${r.total} records removed by curation` }),
      r.reasons.map(g => el("details.reject", { open: true }, el("summary", { text: `${g.reason} · ${g.count}` }),
        g.examples.map(x => el("div.example", {}, el("div.muted", { text: `${x.where} · ${x.operator}${x.detail ? " · " + x.detail : ""}` }), el("pre", { text: x.text }))))));
  }

  await browse(state.path.includes("/") ? state.path.slice(0, state.path.lastIndexOf("/")) : ".");
  if (state.path) await show();
};

function field(name, label, input) {
  return el("label.field", {}, el("span", { text: label }), input);
}

function fillSelect(select, values, current) {
  fill(select, el("option", { value: "", text: "any" }), values.map(v => el("option", { value: v, text: v, selected: v === current })));
}

function sampleCard(s) {
  const head = `#${s.index + 1} · ${s.kind}${s.task ? " · " + s.task : ""}` +
    (s.dropped ? ` · dropped: ${s.dropped}` : ` · ${s.tokens} tokens, ${s.trained} trained${s.truncated ? " · truncated" : ""}`) +
    (s.reason ? ` · removed: ${s.reason}` : "");
  return el("article.sample", { class: s.dropped ? "dropped" : "" }, el("header", {}, el("b", { text: head }), el("span.muted", { text: s.where })),
    s.dropped ? el("pre", { text: s.detail }) : null,
    s.parts.map(p => el("div.part", {}, p.name ? el("div.part-name", { text: p.name }) : null,
      el("pre.tokens", {}, p.runs.map(([text, trained]) => el(trained ? "span.trained" : "span.given", { text }))))));
}

// --- Train -------------------------------------------------------------------------------------------

PAGES.train = async (main, jobId) => {
  if (jobId) return jobView(main, Number(jobId));
  const list = await api("/api/configs");
  const picker = el("select#config", {}, el("option", { value: "", text: "— pick a config —" }), list.configs.map(c => el("option", { value: c, text: c })));
  const upload = el("input", { type: "file", accept: ".yaml,.yml" });
  const editor = el("textarea#config-text", { spellcheck: "false", rows: 22 });
  const verdict = el("div#validation.muted", { text: "" });
  const launch = el("button#launch", { text: "Launch training", disabled: true });
  let path = "", timer = null;
  picker.addEventListener("change", () => guarded(async () => {
    path = picker.value;
    editor.value = path ? (await api(`/api/configs/text?${query({ path })}`)).text : "";
    validate();
  }));
  upload.addEventListener("change", () => guarded(async () => {
    const file = upload.files[0];
    if (!file) return;
    const r = await api(`/api/configs/upload?${query({ name: file.name })}`, { method: "POST", body: await file.text() });
    path = r.path;
    editor.value = r.text;
    validate();
  }));
  editor.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(validate, 300); });
  async function validate() {
    if (!path) return;
    const r = await api("/api/configs/validate", { method: "POST", body: { path, text: editor.value } });
    verdict.className = r.ok ? "ok" : "error";
    verdict.textContent = r.ok ? `valid · stage ${r.stage} · method ${r.method} · output ${r.output_dir}` : r.error;
    launch.disabled = !r.ok;
  }
  launch.addEventListener("click", () => guarded(async () => {
    launch.disabled = true;
    const job = await api("/api/jobs", { method: "POST", body: { path, text: editor.value, kind: "train" } });
    location.hash = `#train/${job.id}`;
  }));
  const jobs = el("div#jobs");
  main.append(el("div.split", {}, el("section.content", {}, el("h2", { text: "Launch a run" }),
    el("div.row", {}, picker, el("span.muted", { text: "or upload" }), upload), editor, verdict, launch),
  el("section.content", {}, el("h2", { text: "Jobs" }), jobs)));
  const refresh = async () => fill(jobs, jobTable((await api("/api/jobs")).jobs.filter(j => j.kind === "train")));
  await refresh();
  every(2000, () => guarded(refresh));
};

function jobTable(jobs) {
  if (!jobs.length) return el("p.muted", { text: "No jobs yet." });
  return table(["job", "config", "status", "run", ""], jobs.map(j => [
    String(j.id), j.name, el("span.status", { class: j.status, text: j.status }), j.run_dir,
    el("a", { href: `#${j.kind === "train" ? "train" : "compare"}/${j.id}`, text: "open" })]));
}

async function jobView(main, id) {
  const status = el("span#job-status.status");
  const bar = el("progress#progress", { max: 1, value: 0 });
  const eta = el("span#eta.muted");
  const stop = el("button#stop", { text: "Stop (keep a checkpoint)", on: { click: () => guarded(async () => { await api(`/api/jobs/${id}/stop`, { method: "POST" }); poll(); }) } });
  const resume = el("button#resume", { text: "Resume", on: { click: () => guarded(async () => { await api(`/api/jobs/${id}/resume`, { method: "POST" }); poll(); }) } });
  const charts = { loss: el("canvas#chart-loss.chart"), lr: el("canvas#chart-lr.chart"), tokens_per_s: el("canvas#chart-tps.chart") };
  const log = el("pre#log.log");
  const title = el("h2", { text: `Job ${id}` });
  main.append(el("section.content", {}, title, el("div.row", {}, status, bar, eta, stop, resume),
    el("div.charts", {}, Object.values(charts)), el("h3", { text: "Log" }), log));
  const points = { loss: [], lr: [], tokens_per_s: [] };
  let since = 0, started = null, run = null;

  async function poll() {
    const job = await api(`/api/jobs/${id}`);
    run = job.run;
    title.textContent = `Job ${id} · ${job.name} · ${job.run}`;
    status.textContent = job.status;
    status.className = `status ${job.status}`;
    stop.disabled = job.status !== "running";
    resume.disabled = !(job.status === "stopped" || job.status === "failed");
    log.textContent = job.log.split("\n").slice(-40).join("\n");
    const c = await api(`/api/runs/curves?${query({ path: run, since })}`);
    // a resumed run rewrites metrics past its checkpoint: replace the points after it
    for (const k of Object.keys(points)) {
      const fresh = c.points[k] || [];
      if (fresh.length) points[k] = points[k].filter(p => p[0] < fresh[0][0]).concat(fresh);
    }
    if (c.step > since) {
      started = started || { t: Date.now(), step: since };
      since = c.step;
    }
    if (c.total_steps) {
      bar.max = c.total_steps; bar.value = c.step;
      const rate = started && c.step > started.step ? (Date.now() - started.t) / 1000 / (c.step - started.step) : null;
      eta.textContent = `step ${c.step}/${c.total_steps}` + (rate && job.status === "running" ? ` · ETA ${duration(rate * (c.total_steps - c.step))}` : "");
    }
    drawChart(charts.loss, [{ name: "loss", points: points.loss }], { title: "loss" });
    drawChart(charts.lr, [{ name: "learning rate", points: points.lr }], { title: "learning rate" });
    drawChart(charts.tokens_per_s, [{ name: "tokens/s", points: points.tokens_per_s }], { title: "trained tokens / s" });
  }
  await poll();
  every(700, () => guarded(poll));
}

// --- Runs --------------------------------------------------------------------------------------------

PAGES.runs = async (main, path) => {
  const { runs } = await api("/api/runs");
  const chart = el("canvas#runs-chart.chart.wide");
  const picked = new Set(runs.slice(0, 3).map(r => r.path));
  const details = el("div#run-details");
  const rows = runs.map(r => [
    el("input", { type: "checkbox", checked: picked.has(r.path), on: { change: e => { e.target.checked ? picked.add(r.path) : picked.delete(r.path); overlay(); } } }),
    el("a", { href: `#runs/${encodeURIComponent(r.path)}`, text: r.path }),
    `${r.stage || ""} ${r.method || r.state}`, r.steps, r.loss, r.eval, r.trainable, duration(r.seconds)]);
  main.append(el("section.content", {}, el("h2", { text: `Runs (${runs.length})` }),
    runs.length ? table(["", "run", "method", "steps", "loss", "eval", "trainable", "time"], rows) : el("p.muted", { text: "No runs under the root yet." }),
    chart, details));
  async function overlay() {
    const series = [];
    for (const p of picked) series.push({ name: p, points: (await api(`/api/runs/curves?${query({ path: p })}`)).points.loss });
    drawChart(chart, series, { title: "loss, overlaid" });
  }
  await overlay();
  if (path) {
    const d = await api(`/api/runs/details?${query({ path })}`);
    details.append(el("h3", { text: path }),
      d.report ? el("iframe.report", { src: `/files/${path}/report.html`, title: "run report" }) : el("p.muted", { text: "No report yet (written when the run ends)." }),
      el("h3", { text: "manifest.json" }), el("pre.log", { text: d.manifest ? JSON.stringify(d.manifest, null, 2) : "not written yet" }));
  }
};

// --- Playground --------------------------------------------------------------------------------------

PAGES.playground = async (main) => {
  const { runs } = await api("/api/runs");
  const trained = runs.filter(r => r.final);
  const boxes = trained.map(r => el("label.check", {}, el("input", { type: "checkbox", value: r.path, "data-run": r.path }), r.path));
  const form = el("form.controls", {},
    field("max_tokens", "Max tokens", el("input", { name: "max_tokens", type: "number", value: 64, min: 1 })),
    field("temperature", "Temperature", el("input", { name: "temperature", type: "number", value: 0, step: 0.1, min: 0 })),
    field("top_p", "Top p", el("input", { name: "top_p", type: "number", value: 1, step: 0.05, min: 0.05, max: 1 })),
    field("variant", "Prompt", el("select", { name: "variant" }, ["plain", "few_shot", "rag"].map(v => el("option", { text: v })))),
    field("pool", "Few-shot pool", el("input", { name: "pool", placeholder: "data file" })),
    field("index", "RAG index", el("input", { name: "index", placeholder: "index folder" })),
    field("k", "k", el("input", { name: "k", type: "number", value: 4, min: 0, max: 16 })));
  const prompt = el("textarea#prompt", { rows: 3, placeholder: "Ask all models the same question… (Ctrl+Enter sends)" });
  const send = el("button#send", { text: "Send" });
  const columns = el("div#columns.columns");
  main.append(el("section.content", {}, el("h2", { text: "Playground" }),
    el("div.row", {}, el("b", { text: "Adapters (up to 3):" }), boxes.length ? boxes : el("span.muted", { text: "no trained runs under the root" })),
    form, prompt, send, columns));
  prompt.addEventListener("keydown", e => { if (e.key === "Enter" && e.ctrlKey) send.click(); });
  send.addEventListener("click", () => guarded(async () => {
    const chosen = boxes.map(b => b.querySelector("input")).filter(i => i.checked).map(i => i.value);
    if (chosen.length > 3) throw new Error("at most three adapters side by side");
    const adapters = Object.fromEntries(chosen.map((p, i) => [`adapter${i + 1}`, p]));
    const f = Object.fromEntries(new FormData(form));
    const body = { adapters, messages: [{ role: "user", content: prompt.value }], variant: f.variant,
      pool: f.pool || null, index: f.index || null, k: Number(f.k),
      sampling: { max_tokens: Number(f.max_tokens), temperature: Number(f.temperature), top_p: Number(f.top_p) } };
    const names = ["base", ...Object.keys(adapters)];
    fill(columns, ...names.map(n => replyColumn(n, n === "base" ? STATE.model : adapters[n], body)));
    await Promise.all(names.map(n => streamInto(columns.querySelector(`[data-model="${n}"]`), { ...body, model: n })));
  }));
};

function replyColumn(name, source, request) {
  const text = el("div.reply", { "data-reply": name });
  const better = el("textarea.better", { rows: 3, placeholder: "Write a better answer…", hidden: true });
  const saveBetter = el("button.save-better", { text: "Save better answer", hidden: true });
  const verdict = el("span.muted.feedback-state");
  const send = (body) => guarded(async () => {
    // every reply shown goes to the store with the judged one: they are the item's candidates
    const columns = [...document.querySelectorAll("#columns .column")];
    const replies = columns.map(c => ({ model: c.dataset.model, source: c.dataset.source, text: c.querySelector(".reply").textContent }));
    await api("/api/playground/feedback", { method: "POST", body: { ...body, prompt: request.messages, replies, target: columns.findIndex(c => c.dataset.model === name) } });
    verdict.textContent = "saved to the review store";
  });
  saveBetter.addEventListener("click", () => send({ better: better.value }));
  return el("div.column", { "data-model": name, "data-source": source }, el("h3", { text: name }), el("div.muted", { text: source }), text,
    el("div.row", {},
      el("button.thumb-up", { text: "✓ good", title: "thumbs up: a good answer", on: { click: () => send({ thumbs: "up" }) } }),
      el("button.thumb-down", { text: "✗ bad", title: "thumbs down: a bad answer", on: { click: () => send({ thumbs: "down" }) } }),
      el("button.write-better", { text: "Write a better answer", on: { click: () => { better.hidden = saveBetter.hidden = false; better.value = text.textContent; better.focus(); } } }),
      verdict),
    better, saveBetter);
}

async function streamInto(column, body) {
  const out = column.querySelector(".reply");
  column.classList.add("streaming");
  const response = await api("/api/playground/chat", { method: "POST", body, stream: true });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    column.classList.remove("streaming");
    throw new Error(data.error ? data.error.message : response.statusText);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", chunks = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const event = JSON.parse(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
      if (event.delta !== undefined) { out.textContent += event.delta; column.dataset.chunks = String(++chunks); }
      if (event.done) column.dataset.finish = event.done;
    }
  }
  column.classList.remove("streaming");
}

// --- Compare -----------------------------------------------------------------------------------------

PAGES.compare = async (main, jobId) => {
  if (jobId) return compareView(main, Number(jobId));
  const list = await api("/api/configs");
  const picker = el("select#compare-config", {}, el("option", { value: "", text: "— pick a compare config —" }), list.configs.map(c => el("option", { value: c, text: c })));
  const editor = el("textarea#compare-text", { spellcheck: "false", rows: 18 });
  const verdict = el("div.muted");
  const launch = el("button", { text: "Run compare", disabled: true });
  let path = "";
  picker.addEventListener("change", () => guarded(async () => {
    path = picker.value;
    editor.value = path ? (await api(`/api/configs/text?${query({ path })}`)).text : "";
    const r = await api("/api/configs/validate", { method: "POST", body: { path, text: editor.value } });
    verdict.className = r.ok ? "ok" : "error";
    verdict.textContent = r.ok ? `valid · results in ${r.compare_dir}` : r.error;
    launch.disabled = !r.ok;
  }));
  launch.addEventListener("click", () => guarded(async () => {
    const job = await api("/api/jobs", { method: "POST", body: { path, text: editor.value, kind: "compare" } });
    location.hash = `#compare/${job.id}`;
  }));
  const jobs = el("div");
  main.append(el("div.split", {}, el("section.content", {}, el("h2", { text: "Compare zero-shot, few-shot, RAG and fine-tuned" }), picker, editor, verdict, launch),
    el("section.content", {}, el("h2", { text: "Comparisons" }), jobs)));
  const refresh = async () => fill(jobs, jobTable((await api("/api/jobs")).jobs.filter(j => j.kind === "compare")));
  await refresh();
  every(3000, () => guarded(refresh));
};

async function compareView(main, id) {
  const head = el("h2", { text: `Comparison ${id}` });
  const body = el("div");
  main.append(el("section.content", {}, head, body));
  async function poll() {
    const job = await api(`/api/jobs/${id}`);
    head.textContent = `Comparison ${id} · ${job.name} · ${job.status}`;
    if (job.status === "running") return fill(body, el("pre.log", { text: job.log.split("\n").slice(-30).join("\n") }));
    const r = await api(`/api/compare/results?${query({ path: job.run })}`);
    fill(body, r.report ? el("iframe.report.tall", { src: `/files/${job.run}/report.html`, title: "compare report" }) : el("pre.log", { text: job.log }));
    pageTimers.forEach(clearInterval);
  }
  await poll();
  every(2000, () => guarded(poll));
}

// --- Review ------------------------------------------------------------------------------------------

PAGES.review = async (main) => {
  const reviewer = localStorage.getItem("reviewer") || "";
  const who = el("input#reviewer", { value: reviewer, size: 12, placeholder: "your name", on: { change: e => { localStorage.setItem("reviewer", e.target.value); load(); } } });
  const importPath = el("input#import-path", { placeholder: "data file under the root", size: 30 });
  const exportPath = el("input#export-path", { value: "review/export.jsonl", size: 24 });
  const kind = el("select#export-kind", {}, ["dpo", "sft", "kto"].map(k => el("option", { text: k })));
  const progress = el("div#review-progress.muted");
  const view = el("div#review-item");
  const result = el("div#review-result.muted");
  main.append(el("section.content", {}, el("h2", { text: "Review" }),
    el("div.row", {}, el("label.check", {}, "Reviewer ", who),
      importPath, el("button#import", { text: "Import", on: { click: () => guarded(async () => {
        const r = await api("/api/review/import", { method: "POST", body: { path: importPath.value } });
        result.textContent = `imported ${r.added} replies from ${r.samples} samples (${r.items_created} new items)`;
        load();
      }) } }),
      kind, exportPath, el("button#export", { text: "Export", on: { click: () => guarded(async () => {
        const r = await api("/api/review/export", { method: "POST", body: { path: exportPath.value, kind: kind.value } });
        const left = Object.entries(r.not_exported).map(([k, n]) => `${n} ${k}`).join(", ");
        result.textContent = `wrote ${r.records} ${r.kind} records from ${r.items_exported} of ${r.items} items to ${r.path}${left ? ` · not exported: ${left}` : ""}`;
      }) } })),
    el("p.muted", {}, "Keys: ", el("kbd", { text: "1–4" }), " choose · ", el("kbd", { text: "u" }), "/", el("kbd", { text: "d" }),
      " thumbs on the chosen (or first) reply · ", el("kbd", { text: "e" }), " edit · ", el("kbd", { text: "s" }), " skip · ",
      el("kbd", { text: "n" }), " done"),
    progress, result, view));
  let item = null, focus = 0;

  const trained = (await api("/api/runs")).runs.filter(r => r.final);
  async function load() {
    // taking the next item claims it: only once the reviewer has a name
    if (!who.value.trim()) return fill(view, el("p", { text: "Type your name as reviewer to start." }));
    display(await api(`/api/review/next?${query({ reviewer: who.value.trim() })}`));
  }
  function display(r) {
    const st = r.stats, done = st.status.done || 0;
    progress.textContent = `${done} of ${st.items} items done · ${st.status.open || 0} open · exportable: ` +
      Object.entries(st.exportable).map(([k, n]) => `${n} ${k}`).join(", ");
    item = r.item;
    if (!item) return fill(view, el("p", { text: "Nothing left to review." }));
    fill(view, el("div.review-item", { "data-item": item.id },
      el("h3", { text: `Item ${item.id}` }),
      el("div.prompt", {}, item.prompt.map(m => el("div", {}, el("b", { text: `${m.role}: ` }), el("span", { text: m.content })))),
      el("div.candidates", {}, item.candidates.map(c => candidate(c))),
      item.candidates.length < 4 ? addCandidate() : null,
      el("div.row", {},
        el("input#note", { placeholder: "a note…", size: 40 }),
        el("button#add-note", { text: "Add note", on: { click: () => act("note", { text: document.getElementById("note").value }) } }),
        el("button#skip", { text: "Skip", on: { click: () => act("skip", {}).then(load) } }),
        el("button#done", { text: "Done → next", on: { click: () => act("done", {}).then(load) } }))));
  }
  // Another reply, written now by the base model, a trained run or an OpenAI-compatible endpoint.
  function addCandidate() {
    const source = el("select#new-source", {}, [["model", "base model"], ["adapter", "trained run"], ["endpoint", "endpoint"]].map(([v, t]) => el("option", { value: v, text: t })));
    const run = el("select#new-run", {}, trained.map(r => el("option", { value: r.path, text: r.path })));
    const url = el("input#new-url", { placeholder: "http://127.0.0.1:8000/v1", size: 26 });
    const model = el("input#new-model", { placeholder: "model id", size: 14 });
    const toggle = () => { run.hidden = source.value !== "adapter"; url.hidden = model.hidden = source.value !== "endpoint"; };
    source.addEventListener("change", toggle);
    toggle();
    const go = el("button#generate", { text: "Write a candidate", on: { click: () => guarded(async () => {
      go.disabled = true;
      try {
        const r = await api(`/api/review/${item.id}/candidates`, { method: "POST", body: {
          source: source.value, run: run.value || null, url: url.value || null, endpoint_model: model.value || null,
          sampling: { max_tokens: 128, temperature: 0.7 } } });
        display(r);
      } finally { go.disabled = false; }
    }) } });
    return el("div.row.add-candidate", {}, el("span.muted", { text: "Add a candidate from" }), source, run, url, model, go);
  }
  function candidate(c) {
    const text = el("textarea.candidate-text", { rows: 5 });
    text.value = c.text;
    return el("div.candidate", { class: item.choice === c.index ? "chosen" : "", "data-candidate": c.index },
      el("div.row", {}, el("b", { text: `#${c.index + 1}` }), el("span.muted", { text: `${c.source.kind} ${c.source.name || ""}` }),
        c.edited ? el("span.badge", { text: "edited" }) : null, c.thumb === true ? el("span.thumb", { text: "✓ good" }) : c.thumb === false ? el("span.thumb", { text: "✗ bad" }) : null),
      text,
      el("div.row", {},
        el("button.choose", { text: "Choose", on: { click: () => act("choose", { candidate: c.index }) } }),
        el("button.save-edit", { text: "Save edit", on: { click: () => act("edit", { candidate: c.index, text: text.value }) } }),
        el("button.up", { text: "✓ good", on: { click: () => act("thumb", { candidate: c.index, up: true }) } }),
        el("button.down", { text: "✗ bad", on: { click: () => act("thumb", { candidate: c.index, up: false }) } })));
  }
  async function act(action, body) {
    const r = await api(`/api/review/${item.id}/${action}`, { method: "POST", body: { reviewer: who.value, ...body } });
    if (action !== "skip" && action !== "done") display(r);
  }
  document.onkeydown = onKey;
  function onKey(e) {
    if (!item || ["INPUT", "TEXTAREA", "SELECT"].includes(e.target.tagName)) return;
    const n = Number(e.key);
    if (n >= 1 && n <= item.candidates.length) { focus = n - 1; guarded(() => act("choose", { candidate: focus })); }
    else if (e.key === "u" || e.key === "d") guarded(() => act("thumb", { candidate: item.choice ?? focus, up: e.key === "u" }));
    else if (e.key === "e") view.querySelectorAll(".candidate-text")[item.choice ?? focus].focus();
    else if (e.key === "s") guarded(() => act("skip", {}).then(load));
    else if (e.key === "n") guarded(() => act("done", {}).then(load));
  }
  await load();
};
