"use strict";
// The journey dashboard: every number comes from the HTTP API of the worker serving this page.
const REFRESH_MS = 5000;
const PAGE = 25;
const link = new URLSearchParams(location.hash.slice(1));  // #stage=contact&lead=L-1: shareable views
const DIMENSIONS = ["channel", "source", "campaign"];
const state = {
  stage: link.get("stage"), lead: link.get("lead"), offset: 0, token: localStorage.getItem("journeyToken"),
  by: DIMENSIONS.includes(link.get("by")) ? link.get("by") : "channel",
};

function remember() {
  const parts = new URLSearchParams();
  if (state.stage) parts.set("stage", state.stage);
  if (state.lead) parts.set("lead", state.lead);
  if (state.by !== "channel") parts.set("by", state.by);
  history.replaceState(null, "", "#" + parts.toString());
}

const $ = (sel) => document.querySelector(sel);
const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));
const pct = (part, whole) => (whole ? (100 * part / whole).toFixed(1) + "%" : "–");

async function api(path) {
  const headers = state.token ? { Authorization: "Bearer " + state.token } : {};
  const response = await fetch(path, { headers });
  if (response.status === 401) {
    const token = prompt("This journey needs a read token (JOURNEY_READ_TOKEN):");
    if (token) { state.token = token; localStorage.setItem("journeyToken", token); return api(path); }
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
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

function fill(tbody, rows) { tbody.replaceChildren(...rows); }

// Charts (Chart.js, shipped with the worker). Each canvas also carries what it drew, as data
// attributes, so a test (and a curious user) can check the picture against the API.
const PALETTE = ["#3b6fd8", "#2a9d8f", "#e9a23b", "#d8553b", "#7b5cc4", "#5b6475"];
const charts = {};
function draw(id, type, labels, datasets, options = {}) {
  const canvas = document.getElementById(id);
  if (typeof Chart === "undefined") { canvas.dataset.drawn = "0"; return; }
  const data = { labels, datasets };
  if (charts[id]) { charts[id].data = data; charts[id].update("none"); }
  else {
    charts[id] = new Chart(canvas, {
      type, data,
      options: { animation: false, responsive: true, maintainAspectRatio: false, plugins: { legend: { display: datasets.length > 1 } }, ...options },
    });
  }
  const chart = charts[id];
  canvas.dataset.labels = JSON.stringify(labels);
  canvas.dataset.values = JSON.stringify(Object.fromEntries(datasets.map((d) => [d.label, d.data])));
  canvas.dataset.drawn = String(datasets.reduce((n, _, i) => n + chart.getDatasetMeta(i).data.length, 0));
}

// The cohort table as a heat map: the darker the cell, the larger the share of its cohort.
function heat(td, part, whole) {
  const share = whole ? part / whole : 0;
  td.style.background = `hsl(220 70% ${(97 - 45 * share).toFixed(1)}%)`;
  if (share > 0.6) td.style.color = "#fff";
  td.dataset.share = share.toFixed(4);
}

function renderReport(report) {
  $("#leads").textContent = fmt(report.leads);
  $("#events-valid").textContent = fmt(report.events.valid);
  $("#events-invalid").textContent = fmt(report.events.invalid);
  $("#events-duplicates").textContent = fmt(report.events.duplicates);
  $("#watermark").textContent = report.watermark ? report.watermark.replace("T", " ").slice(0, 19) + " UTC" : "–";

  const steps = Object.entries(report.funnel);
  const top = steps.length ? steps[0][1] : 0;
  fill($("#funnel tbody"), steps.map(([step, n], i) => row(
    [["name", step], ["count", fmt(n)], ["pct step-conversion", i ? pct(n, steps[i - 1][1]) : ""], ["pct top-conversion", pct(n, top)], ["bar", bar(n, top)]],
    { "data-step": step })));
  $("#funnel-overall").textContent = steps.length > 1 ? pct(steps[steps.length - 1][1], top) : "–";
  draw("funnel-chart", "bar", steps.map(([step]) => step),
    [{ label: "leads", data: steps.map(([, n]) => n), backgroundColor: steps.map((_, i) => PALETTE[i % PALETTE.length]) }],
    { indexAxis: "y", scales: { x: { beginAtZero: true } },
      plugins: { legend: { display: false }, tooltip: { callbacks: { afterLabel: (c) => pct(c.raw, top) + " of top" } } } });

  const levels = Object.entries(report.qualification);
  fill($("#qualification tbody"), levels.map(([level, n]) => row(
    [["name", level.toUpperCase() === level ? level : level], ["count", fmt(n)], ["pct", pct(n, report.leads)], ["bar", bar(n, report.leads)]],
    { "data-level": level })));

  const names = steps.map(([step]) => step);
  const head = document.createElement("tr");
  for (const label of ["cohort", "leads", ...names.slice(1)]) { const th = document.createElement("th"); th.textContent = label; head.appendChild(th); }
  $("#cohorts thead").replaceChildren(head);
  const days = Object.keys(report.cohorts_daily).sort().reverse().slice(0, 30);
  fill($("#cohorts tbody"), days.map((day) => {
    const cohort = report.cohorts_daily[day];
    const size = cohort[names[0]];
    const tr = row([["", day], ["count", fmt(size)], ...names.slice(1).map((s) => ["pct", pct(cohort[s], size)])], { "data-day": day });
    names.slice(1).forEach((s, i) => heat(tr.children[2 + i], cohort[s], size));
    return tr;
  }));
  return report;
}

const money = (revenue) => Object.entries(revenue || {}).map(([currency, amount]) =>
  `${currency} ${Number(amount).toLocaleString("en", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`).join(", ") || "–";

// The funnel broken down by first touch: one dimension at a time, most leads first.
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
}

function leadValue(key, value) {
  if (key === "first_touch") return value ? ["source", "channel", "campaign"].map((k) => value[k] ?? "–").join(" / ") : "no touch";
  if (key === "revenue") return money(value);
  return value ?? "–";
}

// The pipeline as a board: a column per stage, its first leads as cards (longest in the stage first).
async function renderBoard(stages) {
  const pages = await Promise.all(stages.stages.map((s) => api(`/api/stages/${encodeURIComponent(s.stage)}/leads?limit=5`)));
  const limit = stages.stale_after_days;
  $("#board").replaceChildren(...stages.stages.map((s, i) => {
    const column = document.createElement("div");
    column.className = "column" + (s.stage === state.stage ? " selected" : "");
    column.dataset.stage = s.stage;
    column.dataset.leads = s.leads;
    const head = document.createElement("h3");
    head.innerHTML = "<span></span><span></span>";
    head.children[0].textContent = s.stage;
    head.children[1].textContent = fmt(s.leads);
    column.appendChild(head);
    if (s.stale) { const stale = document.createElement("div"); stale.className = "stale-count"; stale.textContent = `${fmt(s.stale)} stale`; column.appendChild(stale); }
    for (const lead of pages[i].leads) {
      const card = document.createElement("div");
      card.className = "card" + (lead.days_in_stage >= limit ? " stale" : "");
      card.innerHTML = "<span></span><span></span>";
      card.children[0].textContent = lead.lead_id;
      card.children[1].textContent = `${lead.days_in_stage}d`;
      card.dataset.lead = lead.lead_id;
      card.addEventListener("click", (event) => { event.stopPropagation(); state.lead = lead.lead_id; remember(); showLead(lead.lead_id); });
      column.appendChild(card);
    }
    if (s.leads > pages[i].leads.length) { const more = document.createElement("div"); more.className = "more"; more.textContent = `+ ${fmt(s.leads - pages[i].leads.length)} more`; column.appendChild(more); }
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
  $("#stage-name").textContent = page.stage;
  $("#page").textContent = page.total ? `${page.offset + 1}–${page.offset + page.leads.length} of ${fmt(page.total)}` : "none";
  $("#prev").disabled = page.offset === 0;
  $("#next").disabled = page.offset + page.leads.length >= page.total;
  fill($("#stage-leads tbody"), page.leads.map((lead) => {
    const tr = row([["", lead.lead_id], ["", lead.stage_entered_at.slice(0, 10)], ["count", lead.days_in_stage]], { "data-lead": lead.lead_id });
    tr.addEventListener("click", () => { state.lead = lead.lead_id; remember(); showLead(lead.lead_id); });
    return tr;
  }));
}

async function showLead(leadId) {
  const lead = await api(`/api/leads/${encodeURIComponent(leadId)}`);
  $("#lead-detail").hidden = false;
  $("#lead-id").textContent = lead.lead_id;
  const dl = $("#lead-detail dl");
  dl.replaceChildren();
  for (const [key, value] of Object.entries(lead)) {
    if (key === "lead_id") continue;
    const dt = document.createElement("dt"); dt.textContent = key.replaceAll("_", " ");
    const dd = document.createElement("dd"); dd.textContent = leadValue(key, value); dd.dataset.field = key;
    dl.append(dt, dd);
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

// The daily funnel over the range: leads reaching each step per day, and the conversion of the
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
    scales: { y: { beginAtZero: true, title: { display: true, text: "leads" } },
              y1: { position: "right", beginAtZero: true, suggestedMax: 100, grid: { drawOnChartArea: false }, title: { display: true, text: "%" } } },
  });
}

let lastReport = null;
async function refresh() {
  try {
    lastReport = renderReport(await api("/api/report"));
    renderAttribution(lastReport);
    const stages = await api("/api/stages");
    renderStages(stages);
    await renderBoard(stages);
    await renderRange(lastReport);
    if (state.stage) await showStage();
    if (state.lead) await showLead(state.lead);
    $("#status").textContent = "";
    document.body.dataset.loaded = "true";
  } catch (error) {
    $("#status").textContent = "Could not refresh: " + error.message + " (retrying)";
  }
}

$("#prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); showStage(); });
$("#next").addEventListener("click", () => { state.offset += PAGE; showStage(); });
$("#range").addEventListener("change", () => lastReport && renderRange(lastReport));
$("#by").addEventListener("change", () => { state.by = $("#by").value; remember(); if (lastReport) renderAttribution(lastReport); });
for (const input of ["#from", "#to"]) $(input).addEventListener("change", () => { $("#range").value = "custom"; lastReport && renderRange(lastReport); });
refresh();
setInterval(refresh, REFRESH_MS);
