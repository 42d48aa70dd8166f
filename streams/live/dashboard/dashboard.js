"use strict";
// The journey dashboard: every number comes from the HTTP API of the worker serving this page.
const REFRESH_MS = 5000;
const PAGE = 10;
const FOLDED = { cohorts: 7, attribution: 10, anonymousIds: 12, changes: 10 };  // rows shown before "show all" (keep in step with dashboard.css)
const link = new URLSearchParams(location.hash.slice(1));  // #stage=contact&lead=L-1 or &anon=A: shareable views
const DIMENSIONS = ["channel", "source", "campaign"];
const state = {
  stage: link.get("stage"), offset: 0, token: localStorage.getItem("journeyToken"),
  // the open person: a lead by its id, or an anonymous visitor by its anonymous id (SPEC §9)
  person: link.get("anon") ? { anonymous: link.get("anon") } : link.get("lead") ? { lead: link.get("lead") } : null,
  by: DIMENSIONS.includes(link.get("by")) ? link.get("by") : "channel",
  velocityStage: link.get("velocity"), cohortsAll: false, attributionAll: false,
  shadow: null, shadowAt: null, changesAll: { stage: false, qualification: false },  // the last shadow comparison shown, and when
};

function remember() {
  const parts = new URLSearchParams();
  if (state.stage) parts.set("stage", state.stage);
  if (state.person && state.person.lead) parts.set("lead", state.person.lead);
  if (state.person && state.person.anonymous) parts.set("anon", state.person.anonymous);
  if (state.by !== "channel") parts.set("by", state.by);
  if (state.velocityStage) parts.set("velocity", state.velocityStage);
  history.replaceState(null, "", "#" + parts.toString());
}

const $ = (sel) => document.querySelector(sel);
const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));
const pct = (part, whole) => (whole ? (100 * part / whole).toFixed(1) + "%" : "–");
const when = (time) => (time ? time.replace("T", " ").slice(0, 16) + " UTC" : "–");

async function api(path) {
  const headers = state.token ? { Authorization: "Bearer " + state.token } : {};
  const response = await fetch(path, { headers });
  if (response.status === 401) {
    const token = prompt("This journey needs a read token (JOURNEY_READ_TOKEN):");
    if (token) { state.token = token; localStorage.setItem("journeyToken", token); return api(path); }
  }
  if (!response.ok) {  // every error answer is JSON with an "error"; its status tells a panel what to do (404: none, 503: not now)
    const body = await response.json().catch(() => ({}));
    throw Object.assign(new Error(body.error || response.statusText), { status: response.status });
  }
  return response.json();
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function row(cells, attrs = {}) {
  const tr = document.createElement("tr");
  for (const [key, value] of Object.entries(attrs)) tr.setAttribute(key, value);
  for (const [cls, content] of cells) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    if (content instanceof Node) td.appendChild(content); else td.textContent = content;
    tr.appendChild(td);
  }
  return tr;
}

function bar(part, whole) {
  const span = document.createElement("span");
  span.style.width = whole ? (100 * part / whole).toFixed(2) + "%" : "0";
  return span;
}

// Fills a table body; each cell also carries its column's heading, which a phone shows above the
// value when a wide table is stacked (dashboard.css, table.stack).
function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
  const heads = [...(tbody.parentElement.tHead ? tbody.parentElement.tHead.rows[0].cells : [])].map((th) => th.dataset.label || th.textContent);
  for (const tr of rows) [...tr.cells].forEach((td, i) => { if (heads[i]) td.dataset.label = heads[i]; });
}

// A long table shows its first rows and a button for the rest; the rows are all there (folded by CSS).
function fold(table, button, total, shown, all, noun, toggle) {
  table.classList.toggle("folded", !all);
  button.hidden = total <= shown;
  button.textContent = all ? `show the first ${shown} only` : `show all ${fmt(total)} ${noun}`;
  button.setAttribute("aria-expanded", String(all));
  button.onclick = toggle;
}

// A person as a board card or a stage list names it: its lead id, or its anonymous id marked as such.
function personId(person) {
  const span = el("span", "id", person.lead_id ?? person.anonymous_id);
  return span;
}
const anonMark = () => el("span", "anon", "anonymous");
function personKey(person) { return person.lead_id !== null && person.lead_id !== undefined ? { lead: person.lead_id } : { anonymous: person.anonymous_id }; }
function open(person) { state.person = personKey(person); remember(); showPerson(); }

// Charts (Chart.js, shipped with the worker). Each canvas also carries what it drew, as data
// attributes, so a test (and a curious user) can check the picture against the API.
const PALETTE = ["#3b6fd8", "#2a9d8f", "#c9801f", "#d8553b", "#7b5cc4", "#5b6475"];
const charts = {};
function draw(id, type, labels, datasets, options = {}) {
  const canvas = document.getElementById(id);
  if (typeof Chart === "undefined") { canvas.dataset.drawn = "0"; return; }
  const data = { labels, datasets };
  const full = { animation: false, responsive: true, maintainAspectRatio: false, plugins: { legend: { display: datasets.length > 1 } }, ...options };
  if (charts[id]) { charts[id].data = data; charts[id].options = full; charts[id].update("none"); }
  else charts[id] = new Chart(canvas, { type, data, options: full });
  const chart = charts[id];
  canvas.dataset.labels = JSON.stringify(labels);
  canvas.dataset.values = JSON.stringify(Object.fromEntries(datasets.map((d) => [d.label, d.data])));
  canvas.dataset.drawn = String(datasets.reduce((n, _, i) => n + chart.getDatasetMeta(i).data.length, 0));
}

// Histograms of whole days (SPEC §10: {"D": count}, only days with a count) as chart bars: one bar per
// day from 0 to the longest, or per week or month when that is more than 120 bars.
function histogramBins(histograms) {
  const longest = Math.max(0, ...histograms.flatMap((h) => Object.keys(h).map(Number)));
  const width = longest < 120 ? 1 : longest < 840 ? 7 : 30;
  const labels = [];
  for (let d = 0; d <= longest; d += width) labels.push(width === 1 ? String(d) : `${d}–${d + width - 1}`);
  const counts = (h) => {
    const out = labels.map(() => 0);
    for (const [day, n] of Object.entries(h)) out[Math.floor(Number(day) / width)] += n;
    return out;
  };
  return { labels, counts, width };
}
const histogramDays = (...histograms) => [...new Set(histograms.flatMap((h) => Object.keys(h).map(Number)))].sort((a, b) => a - b);

// Nearest rank, as SPEC §10 takes the median and p90: the least D whose cumulative count reaches ceil(q × n).
function nearestRank(histogram, q) {
  const days = histogramDays(histogram);
  const n = days.reduce((sum, d) => sum + histogram[d], 0);
  if (!n) return null;
  let seen = 0;
  for (const d of days) { seen += histogram[d]; if (seen >= Math.ceil(q * n)) return d; }
  return null;
}

// The cohort table as a heat map: the darker the cell, the larger the share of its cohort (dark text
// stays readable on the darkest shade).
function heat(td, part, whole) {
  const share = whole ? part / whole : 0;
  td.style.background = `hsl(220 70% ${(97 - 33 * share).toFixed(1)}%)`;
  td.dataset.share = share.toFixed(4);
}

function renderHeadline(report) {
  $("#leads").textContent = fmt(report.leads);
  $("#events-valid").textContent = fmt(report.events.valid);
  $("#events-invalid").textContent = fmt(report.events.invalid);
  $("#events-duplicates").textContent = fmt(report.events.duplicates);
  $("#watermark").textContent = report.watermark ? report.watermark.replace("T", " ").slice(0, 19) + " UTC" : "–";
  const identity = report.identity || { anonymous_ids: 0, joined: 0, over_limit: 0 };
  $("#identity-anonymous").textContent = fmt(identity.anonymous_ids);
  $("#identity-joined").textContent = fmt(identity.joined);
  $("#identity-over-limit").textContent = fmt(identity.over_limit);
  $("#identity-none").textContent = fmt(identity.anonymous_ids - identity.joined - identity.over_limit);
}

// The funnel, all time and within the conversion window (SPEC §10 funnel_window) side by side.
function renderFunnel(report) {
  const steps = Object.entries(report.funnel);
  const top = steps.length ? steps[0][1] : 0;
  const windowed = report.funnel_window || { days: null, steps: {} };
  const wtop = steps.length ? windowed.steps[steps[0][0]] : 0;
  $("#window-days").textContent = fmt(windowed.days);
  $("#window-days-head").textContent = fmt(windowed.days);
  fill($("#funnel tbody"), steps.map(([step, n], i) => row(
    [["name", step], ["count", fmt(n)], ["pct step-conversion", i ? pct(n, steps[i - 1][1]) : ""], ["pct top-conversion", pct(n, top)],
     ["window count", fmt(windowed.steps[step])], ["window-top pct", pct(windowed.steps[step], wtop)]],
    { "data-step": step })));
  const last = steps.length ? steps[steps.length - 1][0] : null;
  $("#funnel-overall").textContent = steps.length > 1 ? pct(steps[steps.length - 1][1], top) : "–";
  $("#window-overall").textContent = steps.length > 1 ? pct(windowed.steps[last], wtop) : "–";
  const withinLabel = `within ${windowed.days} days`;
  draw("funnel-chart", "bar", steps.map(([step]) => step), [
    { label: "all time", data: steps.map(([, n]) => n), backgroundColor: PALETTE[0] },
    { label: withinLabel, data: steps.map(([step]) => windowed.steps[step]), backgroundColor: PALETTE[1] },
  ], { indexAxis: "y", scales: { x: { beginAtZero: true } },
       plugins: { legend: { display: true, position: "bottom" }, tooltip: { callbacks: { afterLabel: (c) => pct(c.raw, c.datasetIndex ? wtop : top) + " of top" } } } });
}

function renderQualification(report) {
  const levels = Object.entries(report.qualification);
  fill($("#qualification tbody"), levels.map(([level, n]) => row(
    [["name", level], ["count", fmt(n)], ["pct", pct(n, report.leads)], ["bar", bar(n, report.leads)]], { "data-level": level })));
}

function renderCohorts(report) {
  const names = Object.keys(report.funnel);
  const head = document.createElement("tr");
  for (const label of ["cohort", "people", ...names.slice(1)]) head.appendChild(el("th", label === "cohort" ? "" : "num", label));
  $("#cohorts thead").replaceChildren(head);
  const days = Object.keys(report.cohorts_daily).sort().reverse().slice(0, 30);
  fill($("#cohorts tbody"), days.map((day) => {
    const cohort = report.cohorts_daily[day];
    const size = cohort[names[0]];
    const tr = row([["", day], ["count", fmt(size)], ...names.slice(1).map((s) => ["pct", pct(cohort[s], size)])], { "data-day": day });
    names.slice(1).forEach((s, i) => heat(tr.children[2 + i], cohort[s], size));
    return tr;
  }));
  fold($("#cohorts"), $("#cohorts-more"), days.length, FOLDED.cohorts, state.cohortsAll, "days",
    () => { state.cohortsAll = !state.cohortsAll; renderCohorts(report); });
}

// Time in stage (SPEC §10 velocity): a row per stage, and the selected stage's days as a chart and a table.
function renderVelocity(report) {
  const velocity = report.velocity || {};
  const stages = Object.keys(report.pipeline).filter((s) => velocity[s]);
  if (!stages.includes(state.velocityStage)) state.velocityStage = null;
  const chosen = state.velocityStage || (stages.includes(state.stage) ? state.stage : stages[0]);
  fill($("#velocity tbody"), stages.map((stage) => {
    const v = velocity[stage];
    const waited = histogramDays(v.waiting_days);
    const tr = row([["name", stage], ["entered count", fmt(v.entered)], ["moved count", fmt(v.moved_on)], ["median days", fmt(v.median_days)],
      ["p90 days", fmt(v.p90_days)], ["waiting count", fmt(v.waiting)], ["waiting-median days", fmt(nearestRank(v.waiting_days, 0.5))],
      ["waiting-longest days", waited.length ? fmt(waited[waited.length - 1]) : "–"]], { "data-stage": stage });
    if (stage === chosen) tr.classList.add("selected");
    tr.addEventListener("click", () => { state.velocityStage = stage; remember(); renderVelocity(report); });
    return tr;
  }));
  const select = $("#velocity-stage");
  if (select.options.length !== stages.length) select.replaceChildren(...stages.map((s) => { const o = el("option", "", s); o.value = s; return o; }));
  select.value = chosen;
  if (!chosen) return;
  const v = velocity[chosen];
  for (const [id, histogram, label, color] of [["velocity-chart", v.days_to_move_on, "moved on", PALETTE[0]], ["waiting-chart", v.waiting_days, "waiting", PALETTE[2]]]) {
    const bins = histogramBins([histogram]);
    draw(id, "bar", bins.labels, [{ label, data: bins.counts(histogram), backgroundColor: color }],
      { scales: { x: { title: { display: true, text: bins.width === 1 ? `whole days in ${chosen}` : `whole days in ${chosen}, by ${bins.width}` } },
                  y: { beginAtZero: true, title: { display: true, text: "people" } } } });
    $("#" + id).dataset.stage = chosen;
  }
  $("#velocity-days summary").textContent = `the chart as a table: days in ${chosen}`;
  fill($("#velocity-days tbody"), histogramDays(v.days_to_move_on, v.waiting_days).map((d) => row(
    [["days", String(d)], ["moved count", fmt(v.days_to_move_on[d] || 0)], ["waiting count", fmt(v.waiting_days[d] || 0)]], { "data-day": String(d) })));
}

// Time to convert (SPEC §10 time_to_convert): per step after the first, over people who reached both.
function renderConvert(report) {
  const convert = report.time_to_convert || {};
  const steps = Object.keys(report.funnel).filter((s) => convert[s]);
  fill($("#convert tbody"), steps.map((step) => {
    const c = convert[step];
    const reached = Object.values(c.days).reduce((sum, n) => sum + n, 0);
    return row([["name", step], ["reached count", fmt(reached)], ["median days", fmt(c.median_days)], ["p90 days", fmt(c.p90_days)]], { "data-step": step });
  }));
  const histograms = steps.map((s) => convert[s].days);
  const bins = histogramBins(histograms);
  // as stepped lines, one per step: three histograms' bars side by side would be slivers
  draw("convert-chart", "line", bins.labels, steps.map((step, i) => ({ label: step, data: bins.counts(convert[step].days), stepped: "middle",
    borderColor: PALETTE[(i + 1) % PALETTE.length], backgroundColor: PALETTE[(i + 1) % PALETTE.length], pointRadius: 0, borderWidth: 2 })),
    { scales: { x: { title: { display: true, text: bins.width === 1 ? "whole days from the first step" : `whole days from the first step, by ${bins.width}` } },
                y: { beginAtZero: true, title: { display: true, text: "people" } } },
      plugins: { legend: { display: true, position: "bottom" } } });
  const head = document.createElement("tr");
  for (const label of ["days", ...steps]) head.appendChild(el("th", "num", label));
  $("#convert-days thead").replaceChildren(head);
  fill($("#convert-days tbody"), histogramDays(...histograms).map((d) => row(
    [["days", String(d)], ...steps.map((step) => [`${step} count`, fmt(convert[step].days[d] || 0)])], { "data-day": String(d) })));
}

const money = (revenue) => Object.entries(revenue || {}).map(([currency, amount]) =>
  `${currency} ${Number(amount).toLocaleString("en", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`).join(", ") || "–";

// The funnel broken down by first touch: one dimension at a time, most people first.
function renderAttribution(report) {
  const values = Object.entries((report.attribution || {})[state.by] || {});
  values.sort((a, b) => b[1].leads - a[1].leads || (a[0] < b[0] ? -1 : 1));
  const steps = Object.keys(report.funnel);
  const last = steps[steps.length - 1];
  $("#by").value = state.by;
  $("#by-name").textContent = state.by;
  fill($("#attribution tbody"), values.map(([value, r]) => {
    const reached = last ? r.funnel[last] : 0;
    return row([["name", value === "" ? '""' : value], ["count", fmt(r.leads)], ["action count", fmt(reached)], ["pct", pct(reached, r.leads)],
      ["customers count", fmt(r.customers)], ["revenue", money(r.revenue)]], { "data-value": value });
  }));
  fold($("#attribution"), $("#attribution-more"), values.length, FOLDED.attribution, state.attributionAll, state.by + " values",
    () => { state.attributionAll = !state.attributionAll; renderAttribution(report); });
}

// The pipeline as a board: a column per stage, its first people as cards (longest in the stage first).
async function renderBoard(stages) {
  const pages = await Promise.all(stages.stages.map((s) => api(`/api/stages/${encodeURIComponent(s.stage)}/leads?limit=5`)));
  const limit = stages.stale_after_days;
  $("#board").replaceChildren(...stages.stages.map((s, i) => {
    const column = el("div", "column" + (s.stage === state.stage ? " selected" : ""));
    column.dataset.stage = s.stage;
    column.dataset.leads = s.leads;
    const head = el("h3");
    head.append(el("span", "", s.stage), el("span", "", fmt(s.leads)));
    column.appendChild(head);
    if (s.stale) column.appendChild(el("div", "stale-count", `${fmt(s.stale)} stale`));
    for (const person of pages[i].leads) {
      const anonymous = person.lead_id === null || person.lead_id === undefined;
      const card = el("div", "card" + (person.days_in_stage >= limit ? " stale" : "") + (anonymous ? " anonymous" : ""));
      const meta = el("span", "meta");
      meta.append(anonymous ? anonMark() : el("span"), el("span", "", `${person.days_in_stage}d`));
      card.append(personId(person), meta);
      if (anonymous) card.dataset.anonymous = person.anonymous_id; else card.dataset.lead = person.lead_id;
      card.tabIndex = 0;
      card.addEventListener("click", (event) => { event.stopPropagation(); open(person); });
      card.addEventListener("keydown", (event) => { if (event.key === "Enter") { event.stopPropagation(); open(person); } });
      column.appendChild(card);
    }
    if (s.leads > pages[i].leads.length) column.appendChild(el("div", "more", `+ ${fmt(s.leads - pages[i].leads.length)} more`));
    column.addEventListener("click", () => { state.stage = s.stage; state.offset = 0; remember(); showStage(); });
    return column;
  }));
}

function renderStages(stages) {
  $("#stale-days").textContent = stages.stale_after_days;
  const total = stages.stages.reduce((sum, s) => sum + s.leads, 0);
  fill($("#pipeline tbody"), stages.stages.map((s) => {
    const tr = row([["name", s.stage], ["count", fmt(s.leads)], ["stale", fmt(s.stale)], ["bar", bar(s.leads, total)]], { "data-stage": s.stage });
    if (s.stage === state.stage) tr.classList.add("selected");
    tr.addEventListener("click", () => { state.stage = s.stage; state.offset = 0; remember(); showStage(); });
    return tr;
  }));
}

async function showStage() {
  if (!state.stage) return;
  const page = await api(`/api/stages/${encodeURIComponent(state.stage)}/leads?offset=${state.offset}&limit=${PAGE}`);
  $("#stage-leads").hidden = false;
  $("#nothing-open").hidden = true;
  $("#stage-name").textContent = page.stage;
  $("#page").textContent = page.total ? `${page.offset + 1}–${page.offset + page.leads.length} of ${fmt(page.total)}` : "none";
  $("#prev").disabled = page.offset === 0;
  $("#next").disabled = page.offset + page.leads.length >= page.total;
  fill($("#stage-leads tbody"), page.leads.map((person) => {
    const anonymous = person.lead_id === null || person.lead_id === undefined;
    const who = el("span");
    who.append(personId(person));
    if (anonymous) who.append(" ", anonMark());
    const tr = row([["person", who], ["", person.stage_entered_at.slice(0, 10)], ["count", person.days_in_stage]],
      anonymous ? { "data-anonymous": person.anonymous_id } : { "data-lead": person.lead_id });
    tr.addEventListener("click", () => open(person));
    return tr;
  }));
}

// One person's detail: a lead by its id (GET /api/leads/{id}), or the person an anonymous id is part
// of (GET /api/anonymous/{A}): a lead it joined, or itself when it joined none.
function personValue(key, value, stages) {
  if (key === "anonymous_ids") {
    if (!value.length) return document.createTextNode("none");
    const list = el("ul", "ids");
    for (const id of value) { const li = el("li", "id", id); li.dataset.anonymous = id; list.appendChild(li); }
    if (value.length <= FOLDED.anonymousIds) return list;
    const details = el("details");
    details.append(el("summary", "", `${fmt(value.length)} anonymous ids`), list);
    return details;
  }
  if (key === "stages_entered_at") {
    const entered = Object.entries(value || {});
    if (!entered.length) return document.createTextNode("–");
    entered.sort((a, b) => stages.indexOf(a[0]) - stages.indexOf(b[0]));
    const list = el("ul");
    for (const [stage, time] of entered) { const li = el("li", "", `${stage}: ${when(time)}`); li.dataset.stage = stage; list.appendChild(li); }
    return list;
  }
  if (key === "first_touch") return document.createTextNode(value ? ["source", "channel", "campaign"].map((k) => value[k] ?? "–").join(" / ") : "no touch");
  if (key === "revenue") return document.createTextNode(money(value));
  if (key.endsWith("_at")) return document.createTextNode(when(value));
  return document.createTextNode(value ?? "–");
}

async function showPerson() {
  const wanted = state.person;
  if (!wanted) return;
  const detail = $("#lead-detail");
  detail.hidden = false;
  $("#nothing-open").hidden = true;
  let person;
  try {
    person = wanted.lead ? await api(`/api/leads/${encodeURIComponent(wanted.lead)}`) : await api(`/api/anonymous/${encodeURIComponent(wanted.anonymous)}`);
  } catch (error) {  // an id nobody has heard of (yet): say so where the detail would be
    detail.dataset.kind = "unknown";
    $("#person-kind").textContent = wanted.lead ? "Lead" : "Anonymous id";
    $("#lead-id").textContent = wanted.lead || wanted.anonymous;
    $("#lead-detail dl").replaceChildren(el("dt", "", "not found"), el("dd", "", error.message));
    return;
  }
  const anonymous = person.lead_id === null;
  detail.dataset.kind = anonymous ? "anonymous" : "lead";
  $("#person-kind").replaceChildren(anonymous ? anonMark() : document.createTextNode("Lead"));
  $("#lead-id").textContent = anonymous ? person.anonymous_ids[0] : person.lead_id;
  const dl = $("#lead-detail dl");
  dl.replaceChildren();
  if (wanted.anonymous && !anonymous) dl.append(el("dt", "", "opened as"), el("dd", "id", `${wanted.anonymous}, which joined this lead`));
  const stages = lastReport ? Object.keys(lastReport.pipeline) : [];
  for (const [key, value] of Object.entries(person)) {
    if (key === "lead_id" || (anonymous && key === "anonymous_ids")) continue;
    const dd = el("dd");
    dd.dataset.field = key;
    dd.appendChild(personValue(key, value, stages));
    dl.append(el("dt", "", key.replaceAll("_", " ")), dd);
  }
}

function rangeDays(report) {
  const choice = $("#range").value;
  if (choice === "custom") return [$("#from").value, $("#to").value];
  const end = report.watermark ? new Date(report.watermark) : new Date();
  const start = new Date(end.getTime() - (Number(choice) - 1) * 86400000);
  const day = (d) => d.toISOString().slice(0, 10);
  $("#from").value = day(start); $("#to").value = day(end);
  return [day(start), day(end)];
}

async function renderRange(report) {
  const [from, to] = rangeDays(report);
  const range = await api(`/api/funnel?from=${from}&to=${to}`);
  const entries = Object.entries(range.funnel);
  fill($("#range-funnel tbody"), entries.map(([step, n]) => row(
    [["name", step], ["count", fmt(n)], ["pct", range.conversion[step] === null ? "" : (100 * range.conversion[step]).toFixed(1) + "%"]], { "data-step": step })));
  $("#range-days").textContent = range.days;
  $("#range-overall").textContent = range.overall === null ? "–" : (100 * range.overall).toFixed(1) + "%";
  renderTrend(report, from, to);
}

// The daily funnel over the range: people reaching each step per day, and the conversion of the
// range so far (last step ÷ first, summed from the range's first day), which ends at "overall".
function renderTrend(report, from, to) {
  const steps = Object.keys(report.funnel);
  const days = [];
  for (let d = new Date(from + "T00:00:00Z"); d <= new Date(to + "T00:00:00Z") && days.length < 400; d = new Date(d.getTime() + 86400000)) {
    days.push(d.toISOString().slice(0, 10));
  }
  const daily = report.funnel_daily || {};
  const datasets = steps.map((step, i) => ({
    label: step, data: days.map((day) => (daily[day] ? daily[day][step] : 0)), yAxisID: "y",
    borderColor: PALETTE[i % PALETTE.length], backgroundColor: PALETTE[i % PALETTE.length], pointRadius: 0, borderWidth: 2,
  }));
  let first = 0, last = 0;
  const conversion = days.map((day) => {
    if (daily[day]) { first += daily[day][steps[0]]; last += daily[day][steps[steps.length - 1]]; }
    return first ? Number((100 * last / first).toFixed(1)) : null;
  });
  datasets.push({ label: "conversion so far %", data: conversion, yAxisID: "y1", borderColor: "#1d2433", borderDash: [4, 3], pointRadius: 0, borderWidth: 1.5, spanGaps: true });
  draw("trend-chart", "line", days, datasets, {
    interaction: { mode: "index", intersect: false },
    scales: { y: { beginAtZero: true, title: { display: true, text: "people" } },
              y1: { position: "right", beginAtZero: true, suggestedMax: 100, grid: { drawOnChartArea: false }, title: { display: true, text: "%" } } },
  });
}

// Shadow definitions (SPEC §11): what a candidate set of definitions would say of the same people, beside
// the current ones, from GET /api/definitions/shadow (replay's --baseline comparison plus both digests).
// Each side shows its own stages, levels and steps; when both sides have the same names, one table puts
// them side by side with the change.
const shortDigest = (digest) => (digest && digest.length > 20 ? digest.slice(0, 19) + "…" : digest || "–");
const signed = (n) => (n > 0 ? "+" + fmt(n) : n < 0 ? "−" + fmt(-n) : "0");

function digestNode(node, digest) {
  node.textContent = shortDigest(digest);
  node.title = digest || "";
  node.dataset.digest = digest || "";
}

// One block of the comparison: names and people under each side, each count followed by the block's
// other columns (extra(entries, i, "current" or "shadow") -> [[class, text], ...]).
function comparePair(box, kind, current, shadow, heads, extra) {
  const sides = { current: Object.entries(current || {}), shadow: Object.entries(shadow || {}) };
  const same = sides.current.length === sides.shadow.length && sides.current.every(([name], i) => sides.shadow[i][0] === name);
  const table = (id, label, columns, rows) => {
    const t = el("table", same ? "merged" : "side");
    t.id = id;
    t.setAttribute("aria-label", label);
    const head = document.createElement("tr");
    for (const [text, cls, heading] of columns) { const th = head.appendChild(el("th", cls, text)); if (heading) th.dataset.label = heading; }
    t.createTHead().appendChild(head);
    fill(t.appendChild(document.createElement("tbody")), rows);
    return t;
  };
  const side = (values, i, which) => [[`${which} count`, fmt(values[i][1])], ...extra(values, i, which).map(([cls, text]) => [`${which}-${cls} ${cls}`, text])];
  box.dataset.layout = same ? "merged" : "side";
  if (same) {
    const columns = (which) => [[which, "num"], ...heads.extra.map((h) => [h, "num", `${which} ${h}`])];
    const merged = table(box.id + "-both", `${heads.title}, current and shadow`,
      [[kind, ""], ...columns("current"), ...columns("shadow"), ...(heads.change ? [["change", "num"]] : [])],
      sides.current.map(([name, n], i) => row([["name", name], ...side(sides.current, i, "current"), ...side(sides.shadow, i, "shadow"),
        ...(heads.change ? [["change count", signed(sides.shadow[i][1] - n)]] : [])], { [`data-${kind}`]: name })));
    merged.classList.add("stack");  // a phone shows each row's numbers under their headings
    merged.style.setProperty("--cells", String(merged.tHead.rows[0].cells.length - 1));
    box.replaceChildren(merged);
    return;
  }
  box.replaceChildren(...["current", "shadow"].map((which) => {
    const wrap = el("div");
    wrap.append(el("h4", "", `under ${which}`), table(`${box.id}-${which}`, `${heads.title} under the ${which} definitions`,
      [[kind, ""], ["people", "num"], ...heads.extra.map((h) => [h, "num"])],
      sides[which].map(([name], i) => row([["name", name], ...side(sides[which], i, which)], { [`data-${kind}`]: name }))));
    return wrap;
  }));
}

// Who would move: "OLD->NEW" pairs (a stage that is none written "none"), most people first.
function renderChanges(id, kind, changes) {
  const pairs = Object.entries(changes || {}).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const total = pairs.reduce((sum, [, n]) => sum + n, 0);
  $(`#shadow-${kind}-moves`).textContent = total ? `${fmt(total)} people` : "nobody";
  fill($(`#${id} tbody`), pairs.map(([pair, n]) => {
    const at = pair.indexOf("->");
    return row([["move", `${pair.slice(0, at)} → ${pair.slice(at + 2)}`], ["count", fmt(n)]], { "data-change": pair });
  }));
  fold($("#" + id), $(`#${id}-more`), pairs.length, FOLDED.changes, state.changesAll[kind], "changes",
    () => { state.changesAll[kind] = !state.changesAll[kind]; renderChanges(id, kind, changes); });
}

function renderShadow(answer) {
  const { baseline, candidate } = answer;
  const digests = answer.definitions || {};
  digestNode($("#shadow-current"), digests.current);
  digestNode($("#shadow-shadow"), digests.shadow);
  $("#shadow-over").textContent = `Over the same ${fmt(baseline.leads)} people and ${fmt(baseline.events.valid)} valid events, to ${when(baseline.watermark)}.`;
  const share = (values, i, which) => [["pct", pct(values[i][1], (which === "current" ? baseline : candidate).leads)]];
  comparePair($("#shadow-pipeline"), "stage", baseline.pipeline, candidate.pipeline, { title: "People per stage", extra: [], change: true }, () => []);
  comparePair($("#shadow-qualification"), "level", baseline.qualification, candidate.qualification,
    { title: "People per qualification level", extra: ["share"], change: true }, share);
  const ofPrevious = (values, i) => [["pct", i ? pct(values[i][1], values[i - 1][1]) : ""]];
  comparePair($("#shadow-funnel"), "step", baseline.funnel, candidate.funnel, { title: "The AIDA funnel", extra: ["of previous"], change: false }, ofPrevious);
  for (const [which, report] of [["current", baseline], ["shadow", candidate]]) {
    const steps = Object.values(report.funnel || {});
    $(`#shadow-funnel-${which}`).textContent = steps.length > 1 ? pct(steps[steps.length - 1], steps[0]) : "–";
  }
  renderChanges("shadow-stage-changes", "stage", answer.stage_changes);
  renderChanges("shadow-qualification-changes", "qualification", answer.qualification_changes);
}

// Polled with the other panels. 404: the cluster has no shadow, so no section. Another error (503 while
// workers disagree or recover): its reason in the section, the last numbers kept and marked stale.
async function refreshShadow() {
  const section = $("#shadow-section");
  try {
    const answer = await api("/api/definitions/shadow");
    renderShadow(answer);
    state.shadow = answer;
    state.shadowAt = new Date();
    section.classList.remove("stale");
    section.dataset.state = "shown";
    $("#shadow-status").textContent = "";
    $("#shadow-body").hidden = false;
    section.hidden = false;
  } catch (error) {
    if (error.status === 404) {
      section.hidden = true;
      section.dataset.state = "none";
      state.shadow = null;
      return;
    }
    section.hidden = false;
    section.dataset.state = state.shadow ? "stale" : "error";
    section.classList.toggle("stale", Boolean(state.shadow));
    $("#shadow-body").hidden = !state.shadow;
    $("#shadow-status").textContent = `Could not refresh: ${error.message} (retrying)` +
      (state.shadow ? `; the numbers below are from ${state.shadowAt.toISOString().slice(11, 19)} UTC` : "");
  }
}

let lastReport = null;
async function refresh() {
  try {
    const report = await api("/api/report");
    lastReport = report;
    renderHeadline(report);
    renderFunnel(report);
    renderQualification(report);
    renderCohorts(report);
    renderVelocity(report);
    renderConvert(report);
    renderAttribution(report);
    const stages = await api("/api/stages");
    renderStages(stages);
    await renderBoard(stages);
    await renderRange(report);
    if (state.stage) await showStage();
    if (state.person) await showPerson();
    $("#status").textContent = "";
    document.body.dataset.loaded = "true";
  } catch (error) {
    $("#status").textContent = "Could not refresh: " + error.message + " (retrying)";
  }
  await refreshShadow();  // apart: a cluster without a shadow, or a shadow that cannot answer now, leaves the rest as it is
}

$("#prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); showStage(); });
$("#next").addEventListener("click", () => { state.offset += PAGE; showStage(); });
$("#range").addEventListener("change", () => lastReport && renderRange(lastReport));
$("#by").addEventListener("change", () => { state.by = $("#by").value; state.attributionAll = false; remember(); if (lastReport) renderAttribution(lastReport); });
$("#velocity-stage").addEventListener("change", () => { state.velocityStage = $("#velocity-stage").value; remember(); if (lastReport) renderVelocity(lastReport); });
for (const input of ["#from", "#to"]) $(input).addEventListener("change", () => { $("#range").value = "custom"; lastReport && renderRange(lastReport); });
refresh();
setInterval(refresh, REFRESH_MS);
