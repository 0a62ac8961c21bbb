// The workbench shell: API calls carrying the CSRF token, a tiny element builder, hash routing.
"use strict";

const TOKEN = document.querySelector('meta[name="tuneforge-token"]').content;
const PAGES = {};
let STATE = {};  // the workbench's root, folders and default model
let stateLoaded = null;
let pageTimers = [];

async function api(path, options = {}) {
  const opts = { ...options, headers: { ...(options.headers || {}) } };
  if (opts.body !== undefined && typeof opts.body !== "string") {
    opts.body = JSON.stringify(opts.body);
    opts.headers["Content-Type"] = "application/json";
  }
  if (opts.method && opts.method !== "GET") opts.headers["X-Tuneforge-Token"] = TOKEN;
  const response = await fetch(path, opts);
  if (opts.stream) return response;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error ? data.error.message : response.statusText);
  return data;
}

function query(params) {
  return new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined)).toString();
}

// el("div.card#id", {attrs, on: {click}}, children...)
function el(spec, attrs = {}, ...children) {
  const [, tag, rest] = spec.match(/^([a-z0-9]+)(.*)$/);
  const node = document.createElement(tag);
  for (const part of rest.match(/[.#][^.#]+/g) || []) {
    if (part[0] === ".") node.classList.add(part.slice(1)); else node.id = part.slice(1);
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "on") Object.entries(v).forEach(([ev, fn]) => node.addEventListener(ev, fn));
    else if (k === "text") node.textContent = v;
    else if (k === "class") { if (v) node.classList.add(...v.split(" ")); }
    else if (v !== false && v !== null && v !== undefined) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

// replaceChildren, with arrays flattened and absent children (null, false) left out
function fill(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter(c => c !== null && c !== undefined && c !== false));
  return node;
}

function toast(message, kind = "error") {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.className = kind;
  if (kind === "error") console.error(message);  // so that a browser test sees what the user saw
  box.hidden = false;
  clearTimeout(box.timer);
  box.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

function every(ms, fn) {
  pageTimers.push(setInterval(fn, ms));
}

async function guarded(fn) {
  try { return await fn(); } catch (e) { toast(e.message); }
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "-";
  const s = Math.round(seconds);
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
    : `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

function fmt(v, digits = 4) {
  return v === null || v === undefined ? "-" : typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(digits)) : String(v);
}

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map(h => el("th", { text: h })))),
    el("tbody", {}, rows.map(r => el("tr", {}, r.map(c => el("td", {}, c instanceof Node ? c : fmt(c)))))));
}

async function render() {
  await stateLoaded;
  pageTimers.forEach(clearInterval);
  pageTimers = [];
  document.onkeydown = null;  // a page's keyboard shortcuts end with it
  const [name, arg] = (location.hash.slice(1) || "data").split("/");
  document.querySelectorAll("#nav a").forEach(a => a.classList.toggle("active", a.dataset.page === name));
  const main = document.getElementById("page");
  main.replaceChildren();
  delete main.dataset.ready;  // set again once this page has rendered
  main.dataset.page = name;
  const render = PAGES[name] || PAGES.data;
  await guarded(() => render(main, arg ? decodeURIComponent(arg) : undefined));
  main.dataset.ready = "1";
}

// One page render at a time: a hash change during a render waits for it, then replaces it.
let rendering = Promise.resolve();
function route() {
  rendering = rendering.then(render);
  return rendering;
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  stateLoaded = guarded(async () => {
    STATE = await api("/api/state");
    document.getElementById("root").textContent = STATE.root;
  });
  route();
});
