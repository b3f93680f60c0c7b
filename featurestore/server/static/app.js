// The page of `fs serve`: search by text, row id or dropped image; browse a class; list unreadable rows.
// Plain DOM code over the JSON API (/api/info, /api/search, /api/rows, /api/unreadable).
"use strict";

const $ = (selector) => document.querySelector(selector);
const PAGE = 60;
let info = null;

function element(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(url, options) {
  const response = await fetch(url, options);
  let body;
  try {
    body = await response.json();
  } catch (err) {
    throw new Error(`${response.status} ${response.statusText}`);
  }
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function setStatus(text, isError = false) {
  const status = $("#status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function splitInfo(name) {
  return info.splits.find((s) => s.name === name);
}

function card(row) {
  const img = element("img", { src: row.thumb, alt: row.id, loading: "lazy", title: "find similar images" });
  img.addEventListener("click", () => {
    $("#mode").value = "id";
    $("#query").value = row.id;
    location.hash = "#search";
    runSearch();
  });
  const caption = element("figcaption", {},
    element("span", { class: "cls" }, row.class ?? (row.label >= 0 ? `label ${row.label}` : "unlabelled")),
    element("span", { class: "score" }, row.score === undefined ? `#${row.row}` : row.score.toFixed(3)),
    element("span", { class: "id", title: row.id }, row.id));
  return element("figure", { class: "hit", "data-row": String(row.row) }, img, caption);
}

function fillSelect(select, values, keep) {
  select.replaceChildren(...values.map(([value, label]) => element("option", { value }, label)));
  if (keep !== undefined && values.some(([v]) => v === keep)) select.value = keep;
}

function fillClassFilter() {
  const s = splitInfo($("#split").value);
  const options = [["", "any"]];
  for (const c of (s && s.classes) || []) options.push([c.name, `${c.name} (${c.rows})`]);
  fillSelect($("#class-filter"), options, $("#class-filter").value);
  $("#class-filter").disabled = !(s && s.classes);
}

function showResults(answer) {
  $("#results").replaceChildren(...answer.hits.map(card));
  $("#warnings").replaceChildren(...answer.warnings.map((w) => element("li", {}, w)));
  const what = answer.query.text !== undefined ? `"${answer.query.text}"`
    : answer.query.id !== undefined ? `row ${answer.query.id}` : answer.query.image;
  setStatus(`${answer.hits.length} hits for ${what} in ${answer.split}` +
    `${answer.class ? ` (class ${answer.class})` : ""} — ${answer.took_ms.toFixed(1)} ms`);
}

async function runSearch() {
  const query = $("#query").value.trim();
  if (!query) { setStatus("type a query first", true); return; }
  const params = new URLSearchParams({ [$("#mode").value]: query, k: $("#k").value, split: $("#split").value });
  if ($("#class-filter").value) params.set("class", $("#class-filter").value);
  setStatus("searching ...");
  try {
    showResults(await api(`/api/search?${params}`));
  } catch (err) {
    $("#results").replaceChildren();
    $("#warnings").replaceChildren();
    setStatus(err.message, true);
  }
}

async function searchImage(file) {
  const form = new FormData();
  form.append("image", file);
  form.append("k", $("#k").value);
  form.append("split", $("#split").value);
  if ($("#class-filter").value) form.append("class", $("#class-filter").value);
  setStatus(`searching with ${file.name} ...`);
  try {
    showResults(await api("/api/search", { method: "POST", body: form }));
  } catch (err) {
    $("#results").replaceChildren();
    setStatus(err.message, true);
  }
}

// ------------------------------------------------------------------ classes and unreadable rows
let classPage = { split: null, name: null, offset: 0 };

function showClassList(split) {
  const s = splitInfo(split);
  $("#classes-split").value = split;
  const links = ((s && s.classes) || []).map((c) => element("li", {},
    element("a", { href: `#classes/${encodeURIComponent(split)}/${encodeURIComponent(c.name)}`,
                   class: c.name === classPage.name ? "current" : "" }, `${c.name} (${c.rows})`)));
  $("#class-list").replaceChildren(...links);
  $("#classes-summary").textContent = s.classes ? `${s.classes.length} classes, ${s.valid} readable rows`
    : "this split has no class names";
}

async function loadClassRows(more = false) {
  const asked = classPage;  // a route change while this request is out makes its answer stale
  const { split, name } = asked;
  const params = new URLSearchParams({ split, class: name, offset: asked.offset, limit: PAGE });
  try {
    const page = await api(`/api/rows?${params}`);
    if (classPage !== asked) return;
    const cards = page.rows.map(card);
    if (more) $("#class-rows").append(...cards); else $("#class-rows").replaceChildren(...cards);
    classPage.offset += page.rows.length;
    $("#class-title").textContent = `${name}: ${page.total} rows of ${split}`;
    $("#class-more").hidden = classPage.offset >= page.total;
  } catch (err) {
    if (classPage === asked) $("#class-title").textContent = err.message;
  }
}

let unreadablePage = { split: null, offset: 0 };

async function loadUnreadable(more = false) {
  // Choosing a split while the default split's rows are still on their way starts a second
  // request; whichever answers last must not overwrite the newer page (it did: an empty table).
  const asked = unreadablePage;
  const params = new URLSearchParams({ split: asked.split, offset: asked.offset, limit: 200 });
  const page = await api(`/api/unreadable?${params}`);
  if (unreadablePage !== asked) return;
  const rows = page.rows.map((r) => element("tr", {},
    element("td", {}, String(r.row)), element("td", {}, r.id),
    element("td", { class: "path" }, r.path), element("td", { class: "reason" }, r.reason)));
  const body = $("#unreadable-table tbody");
  if (more) body.append(...rows); else body.replaceChildren(...rows);
  unreadablePage.offset += page.rows.length;
  $("#unreadable-summary").textContent = `${page.total} unreadable of ${splitInfo(page.split).rows} rows`;
  $("#unreadable-more").hidden = unreadablePage.offset >= page.total;
}

// ------------------------------------------------------------------ routing: #search, #classes/S/C, #unreadable/S
function route() {
  const [view, ...rest] = (location.hash.slice(1) || "search").split("/").map(decodeURIComponent);
  const known = ["search", "classes", "unreadable"].includes(view) ? view : "search";
  for (const name of ["search", "classes", "unreadable"]) {
    $(`#${name}-view`).hidden = name !== known;
    $(`#nav-${name}`).classList.toggle("current", name === known);
  }
  const split = rest[0] && splitInfo(rest[0]) ? rest[0] : $("#split").value;
  if (known === "classes") {
    classPage = { split, name: rest[1] || null, offset: 0 };
    showClassList(split);
    $("#class-rows").replaceChildren();
    $("#class-title").textContent = classPage.name ? "" : "pick a class";
    $("#class-more").hidden = true;
    if (classPage.name) loadClassRows();
  } else if (known === "unreadable") {
    unreadablePage = { split, offset: 0 };
    $("#unreadable-split").value = split;
    const asked = unreadablePage;
    loadUnreadable().catch((err) => { if (unreadablePage === asked) $("#unreadable-summary").textContent = err.message; });
  }
}

async function start() {
  info = await api("/api/info");
  $("#store-name").textContent = `${info.store.split("/").pop()} · ${info.encoder}`;
  $("#store-name").title = `${info.store}\nweights ${info.weights}`;
  const splits = info.splits.map((s) => [s.name, `${s.name} (${s.indexed})`]);
  for (const id of ["#split", "#classes-split", "#unreadable-split"]) fillSelect($(id), splits, info.default_split);
  const unreadable = info.splits.reduce((n, s) => n + s.unreadable.count, 0);
  $("#nav-unreadable").textContent = `Unreadable rows (${unreadable})`;
  if (!info.text_queries) {  // an image-only encoder: search by row id or by image
    $("#mode option[value=query]").disabled = true;
    $("#mode").value = "id";
    $("#query").placeholder = "a stored row id (click a thumbnail to search by it)";
  }
  fillClassFilter();

  $("#split").addEventListener("change", fillClassFilter);
  $("#search-form").addEventListener("submit", (event) => { event.preventDefault(); runSearch(); });
  $("#file").addEventListener("change", () => { if ($("#file").files[0]) searchImage($("#file").files[0]); });
  const drop = $("#drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) searchImage(file);
  });
  $("#classes-split").addEventListener("change", () => { location.hash = `#classes/${encodeURIComponent($("#classes-split").value)}`; });
  $("#unreadable-split").addEventListener("change", () => { location.hash = `#unreadable/${encodeURIComponent($("#unreadable-split").value)}`; });
  $("#class-more").addEventListener("click", () => loadClassRows(true));
  $("#unreadable-more").addEventListener("click", () => loadUnreadable(true));
  window.addEventListener("hashchange", route);
  route();
  setStatus(`${info.splits.length} split(s) served; type a query or drop an image`);
}

start().catch((err) => setStatus(`cannot load /api/info: ${err.message}`, true));
