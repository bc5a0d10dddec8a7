// The API keys settings page. It uses the same /api/v1 endpoints as every client, with
// the CRM session cookie (__Host-rally_session) that the browser sends by itself. A revealed key lives
// only in the reveal dialog's input until that dialog closes. The only thing kept in storage is
// the time of the newest leak report an admin dismissed, so that its banner stays dismissed.
"use strict";

const $ = (selector) => document.querySelector(selector);
const ACCESS_LABELS = { read: "Read only", "read,write": "Full Access", admin: "Admin", "read,admin": "Admin", "write,admin": "Admin", "read,write,admin": "Admin", write: "Write only" };

function show(element, visible) {
  element.hidden = !visible;
}

function announce(message) {
  $("#status").textContent = message;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  show(box, Boolean(message));
}

/// One call of the API: its JSON body (null for 204) and the response, or an Error carrying the
/// API's message, status and field.
async function call(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return { data: null, response };
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data?.error?.message ?? `Request failed (${response.status}).`);
    error.status = response.status;
    error.field = data?.error?.field;
    throw error;
  }
  return { data, response };
}

async function api(method, path, body) {
  return (await call(method, path, body)).data;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

function statusOf(key) {
  if (key.isActive) return ["Active", "status-active"];
  if (leaks.has(key.id)) return ["Leaked, revoked", "status-leaked"];
  if (key.expiresAt && new Date(key.expiresAt) <= new Date()) return ["Expired", "status-expired"];
  return ["Revoked", "status-revoked"];
}

/// The table's summary of a key's allow-list; the entries themselves are in the tooltip.
function allowedIpsLabel(list) {
  if (!list) return "Any IP";
  return list.length === 1 ? "1 address" : `${list.length} addresses`;
}

// ---- the allow-list text box: one entry a line --------------------------------------------
/// The entries of a text box, and the line each came from (blank lines are skipped). No entry
/// at all means any address: null.
function readAllowList(textarea) {
  const entries = [];
  const lines = [];
  textarea.value.split("\n").forEach((line, index) => {
    if (line.trim()) {
      entries.push(line.trim());
      lines.push(index + 1);
    }
  });
  return { list: entries.length ? entries : null, lines };
}

function showAllowListError(textarea, box, message) {
  box.textContent = message;
  show(box, Boolean(message));
  if (message) textarea.setAttribute("aria-invalid", "true");
  else textarea.removeAttribute("aria-invalid");
}

/// An API error about allowedIps, shown under the text box by line ("line 3: …") rather than
/// by the API's entry number; the dialog stays open to fix it. False for any other error.
function allowListErrorShown(error, textarea, box, lines) {
  if (error.field !== "allowedIps") return false;
  const entry = /^Entry (\d+) of allowedIps: (.*)$/s.exec(error.message);
  const line = entry && lines[Number(entry[1]) - 1];
  showAllowListError(textarea, box, line ? `line ${line}: ${entry[2]}` : error.message);
  textarea.focus();
  return true;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function render(keys) {
  keyNames = new Map(keys.map((key) => [key.id, key.name]));
  const body = $("#table tbody");
  body.replaceChildren();
  show($("#empty"), keys.length === 0);
  show($("#table"), keys.length > 0);
  for (const key of keys) {
    const row = body.insertRow();
    row.dataset.id = key.id;
    cell(row, key.name);
    const prefix = cell(row, "");
    const code = document.createElement("code");
    code.textContent = `${key.keyPrefix}…`;
    prefix.append(code);
    cell(row, ACCESS_LABELS[key.scopes] ?? key.scopes);
    const ips = cell(row, allowedIpsLabel(key.allowedIps));
    if (key.allowedIps) ips.title = key.allowedIps.join("\n");
    cell(row, when(key.createdAt));
    cell(row, key.createdBy ?? "—");
    cell(row, when(key.lastUsedAt));
    const usage = cell(row, "…", "spark-cell");
    usage.dataset.usage = "";
    cell(row, key.expiresAt ? when(key.expiresAt) : "Never");
    const [label, className] = statusOf(key);
    const status = cell(row, label, className);
    status.dataset.status = label;
    const foundAt = leaks.get(key.id) && leakLink(leaks.get(key.id));
    if (foundAt) status.append(foundAt);
    const actions = row.insertCell();
    actions.className = "row-actions";
    // Usage for every key, revoked and expired ones too: attempts with them are counted.
    const buttons = [["Usage", openUsage]];
    if (key.isActive) buttons.push(["Rename or change access", openEdit], ["Reset key", openReset], ["Revoke", openRevoke]);
    for (const [text, handler] of buttons) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = text;
      button.setAttribute("aria-label", `${text}: ${key.name}`);
      button.addEventListener("click", () => handler(key));
      actions.append(button);
    }
    actions.append(historyButton(key));
  }
}

async function load() {
  show($("#loading"), true);
  $("#keys").setAttribute("aria-busy", "true");
  try {
    const [keys, leaked] = await Promise.all([
      api("GET", "/api/v1/api-keys?limit=1000"),
      // The keys must show even when the leak reports cannot be read.
      api("GET", `/api/v1/audit-events?action=api_key.leaked&limit=${LEAKS_SHOWN}`).catch(() => []),
    ]);
    leaks = new Map();
    for (const event of leaked) if (!leaks.has(event.keyId)) leaks.set(event.keyId, event);
    show($("#signin"), false);
    show($("#keys"), true);
    showError("");
    render(keys);
    showLeakBanner();
    loadSparklines(keys);
    show($("#activity"), true);
    await activity.open(`/api/v1/audit-events?limit=${EVENTS_PAGE}`);
  } catch (error) {
    if (error.status === 401) {
      show($("#keys"), false);
      show($("#activity"), false);
      show($("#signin"), true);
    } else {
      showError(error.message);
    }
  } finally {
    show($("#loading"), false);
    $("#keys").removeAttribute("aria-busy");
  }
}

// ---- leaked keys ---------------------------------------------------------------------------
// Keys that GitHub's secret scanning reported and the service revoked: the api_key.leaked
// events, newest first. A key's row says "Leaked, revoked" with a link to where it was found,
// and a banner lists the reports newer than the newest one an admin dismissed.
const LEAKS_SHOWN = 100;
const DISMISSED = "rally.leaks.dismissedThrough";
let leaks = new Map();

/// A link to where the key was found; only for an https URL, since the report's text is not ours.
function leakLink(event) {
  const url = event.details?.url;
  if (typeof url !== "string" || !/^https:\/\//i.test(url)) return null;
  const link = document.createElement("a");
  link.href = url;
  link.textContent = "Where it was found";
  link.rel = "noopener noreferrer";
  link.target = "_blank";
  return link;
}

function showLeakBanner() {
  const dismissedThrough = Number(localStorage.getItem(DISMISSED) ?? 0);
  const fresh = [...leaks.values()].filter((event) => Date.parse(event.at) > dismissedThrough);
  const list = $("#leak-list");
  list.replaceChildren();
  for (const event of fresh) {
    const item = document.createElement("li");
    item.textContent = `${keyNames.get(event.keyId) ?? event.keyId}, reported ${when(event.at)}. `;
    const link = leakLink(event);
    if (link) item.append(link);
    list.append(item);
  }
  show($("#leak-banner"), fresh.length > 0);
}

$("#leak-dismiss").addEventListener("click", () => {
  // The newest report shown is the mark (milliseconds: the API's times may or may not have
  // fractions, so they do not compare as text).
  const newest = Math.max(0, ...[...leaks.values()].map((event) => Date.parse(event.at)));
  if (newest) localStorage.setItem(DISMISSED, String(newest));
  show($("#leak-banner"), false);
  announce("Leak reports dismissed.");
});

// ---- create, reveal -------------------------------------------------------------------------
function reveal(created) {
  const input = $("#reveal-key");
  input.value = created.key;
  $("#reveal-copied").textContent = "";
  $("#reveal").showModal();
  input.select();
}

function closeReveal() {
  // The key leaves the page with the dialog.
  $("#reveal-key").value = "";
  $("#reveal-copied").textContent = "";
  $("#reveal").close();
}

$("#reveal-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("#reveal-key").value);
    $("#reveal-copied").textContent = "Copied to the clipboard.";
  } catch {
    $("#reveal-key").select();
    $("#reveal-copied").textContent = "Select the key and copy it with your keyboard.";
  }
});
$("#reveal-done").addEventListener("click", closeReveal);
$("#reveal").addEventListener("cancel", (event) => {
  event.preventDefault();
  closeReveal();
});

$("#create-open").addEventListener("click", () => {
  $("#create-form").reset();
  showAllowListError($("#create-ips"), $("#create-ips-error"), "");
  $("#create").showModal();
});

$("#create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const expiry = form.get("expiresAt");
  const body = { name: form.get("name"), scopes: form.get("access") };
  if (expiry) body.expiresAt = new Date(expiry).toISOString();
  const [textarea, box] = [$("#create-ips"), $("#create-ips-error")];
  const { list, lines } = readAllowList(textarea);
  if (list) body.allowedIps = list;
  showAllowListError(textarea, box, "");
  await act(
    "Creating the key…",
    async () => {
      const created = await api("POST", "/api/v1/api-keys", body);
      $("#create").close();
      await load();
      reveal(created);
      return `Created ${created.name}.`;
    },
    (error) => allowListErrorShown(error, textarea, box, lines),
  );
});

// ---- edit, reset, revoke --------------------------------------------------------------------
let selected = null;

function openEdit(key) {
  selected = key;
  $("#edit-name").value = key.name;
  for (const radio of document.querySelectorAll("#edit-form [name=access]")) {
    radio.checked = radio.value === (key.scopes.includes("admin") ? "admin" : key.scopes);
  }
  $("#edit-ips").value = (key.allowedIps ?? []).join("\n");
  showAllowListError($("#edit-ips"), $("#edit-ips-error"), "");
  $("#edit").showModal();
}

function openReset(key) {
  selected = key;
  $("#reset [data-name]").textContent = key.name;
  $("#reset-grace").value = "0";
  $("#reset").showModal();
}

function openRevoke(key) {
  selected = key;
  $("#revoke [data-name]").textContent = key.name;
  $("#revoke").showModal();
}

$("#edit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const [textarea, box] = [$("#edit-ips"), $("#edit-ips-error")];
  // An emptied box lifts the list: allowedIps null.
  const { list, lines } = readAllowList(textarea);
  showAllowListError(textarea, box, "");
  await act(
    "Saving…",
    async () => {
      await api("PATCH", `/api/v1/api-keys/${selected.id}`, { name: form.get("name"), scopes: form.get("access"), allowedIps: list });
      $("#edit").close();
      await load();
      return "Saved.";
    },
    (error) => allowListErrorShown(error, textarea, box, lines),
  );
});

$("#reset-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const grace = Number(new FormData(event.target).get("grace"));
  await act("Resetting the key…", async () => {
    const rotated = await api("POST", `/api/v1/api-keys/${selected.id}/rotate`, { gracePeriodSeconds: grace });
    $("#reset").close();
    await load();
    reveal(rotated);
    return `Reset ${rotated.name}.`;
  });
});

// ---- usage ---------------------------------------------------------------------------------
// Charts are inline SVG built with DOM calls (the page's CSP allows no inline script or style):
// a 30-day sparkline per key in the table, and in the usage dialog the last 2 days by hour and
// the last 30 days by day, each bar stacked by outcome.
const SVG_NS = "http://www.w3.org/2000/svg";
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const OUTCOMES = [["allowed", "allowed"], ["forbidden", "forbidden"], ["ipDenied", "address not allowed"], ["revoked", "revoked"], ["expired", "expired"]];

function svg(name, attributes = {}) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [attribute, value] of Object.entries(attributes)) element.setAttribute(attribute, String(value));
  return element;
}

/// The last `count` UTC buckets of `step` milliseconds, the current one included.
function lastBuckets(step, count) {
  return { from: Math.floor(Date.now() / step) * step - (count - 1) * step, step, count };
}

/// A key's usage over `range`: every bucket of it, those the API leaves out (empty) as zeros.
async function usageOf(id, granularity, range) {
  const from = encodeURIComponent(new Date(range.from).toISOString());
  const report = await api("GET", `/api/v1/api-keys/${id}/usage?granularity=${granularity}&from=${from}`);
  const byStart = new Map(report.buckets.map((bucket) => [Date.parse(bucket.start), bucket]));
  const points = Array.from({ length: range.count }, (_, i) => {
    const start = range.from + i * range.step;
    const bucket = byStart.get(start) ?? {};
    const counts = Object.fromEntries(OUTCOMES.map(([outcome]) => [outcome, bucket[outcome] ?? 0]));
    return { start, counts, total: OUTCOMES.reduce((sum, [outcome]) => sum + counts[outcome], 0) };
  });
  return { report, points };
}

const totalOf = (points) => points.reduce((sum, point) => sum + point.total, 0);

function summary(points) {
  const total = totalOf(points);
  if (total === 0) return "No requests.";
  const parts = OUTCOMES.map(([outcome, label]) => [points.reduce((sum, p) => sum + p.counts[outcome], 0), label])
    .filter(([count]) => count > 0)
    .map(([count, label]) => `${count.toLocaleString()} ${label}`);
  return `${total.toLocaleString()} ${total === 1 ? "request" : "requests"}: ${parts.join(", ")}.`;
}

function sparkline(points) {
  const [width, height] = [90, 22];
  const step = width / points.length;
  const max = Math.max(1, ...points.map((p) => p.total));
  const total = totalOf(points);
  const chart = svg("svg", { class: "spark", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${total} requests in the last 30 days` });
  points.forEach((point, i) => {
    const barHeight = point.total ? Math.max(2, (point.total / max) * (height - 1)) : 1;
    chart.append(svg("rect", { class: point.total ? "bar" : "none", x: (i * step + 0.5).toFixed(1), y: (height - barHeight).toFixed(1), width: Math.max(1, step - 1).toFixed(1), height: barHeight.toFixed(1) }));
  });
  return chart;
}

/// Sparklines for the listed keys, four requests at a time.
let sparklineRound = 0;
async function loadSparklines(keys) {
  const round = ++sparklineRound;
  const waiting = [...keys];
  async function next() {
    for (let key = waiting.shift(); key; key = waiting.shift()) {
      const cell = document.querySelector(`#table tbody tr[data-id="${key.id}"] [data-usage]`);
      try {
        const { points } = await usageOf(key.id, "day", lastBuckets(DAY, 30));
        if (round !== sparklineRound || !cell) return;
        const total = document.createElement("span");
        total.className = "spark-total";
        total.textContent = totalOf(points).toLocaleString();
        cell.replaceChildren(sparkline(points), total);
        cell.dataset.usage = String(totalOf(points));
      } catch {
        if (cell) cell.textContent = "—";
      }
    }
  }
  await Promise.all([next(), next(), next(), next()]);
}

const hourLabel = (start) => new Date(start).toISOString().slice(11, 16);
const dayLabel = (start) => new Date(start).toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });

/// A stacked bar chart of `points`, one bar per bucket; each bar's group carries its counts.
function barChart(points, { label, every, title }) {
  const [width, height, left, right, top, bottom] = [760, 190, 40, 8, 10, 24];
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const max = Math.max(1, ...points.map((p) => p.total));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}: ${summary(points)}` });
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plotHeight * (1 - fraction);
    chart.append(svg("line", { class: "grid", x1: left, x2: width - right, y1: y.toFixed(1), y2: y.toFixed(1) }));
    const tick = svg("text", { class: "axis", x: left - 4, y: (y + 3).toFixed(1), "text-anchor": "end" });
    tick.textContent = Math.round(max * fraction).toLocaleString();
    chart.append(tick);
  }
  const slot = plotWidth / points.length;
  points.forEach((point, i) => {
    const x = left + i * slot;
    const group = svg("g", { class: "bucket", "data-start": new Date(point.start).toISOString(), "data-total": point.total });
    const tooltip = svg("title");
    tooltip.textContent = `${label(point.start)}: ${summary([point])}`;
    group.append(tooltip);
    let y = top + plotHeight;
    for (const [outcome] of OUTCOMES) {
      const count = point.counts[outcome];
      group.setAttribute(`data-${outcome.toLowerCase()}`, String(count));
      if (!count) continue;
      const barHeight = (count / max) * plotHeight;
      y -= barHeight;
      group.append(svg("rect", { class: `o-${outcome}`, x: (x + slot * 0.12).toFixed(1), y: y.toFixed(1), width: (slot * 0.76).toFixed(1), height: Math.max(0.5, barHeight).toFixed(1) }));
    }
    chart.append(group);
    if (i % every === 0) {
      const tick = svg("text", { class: "axis", x: (x + slot / 2).toFixed(1), y: height - 8, "text-anchor": "middle" });
      tick.textContent = label(point.start);
      chart.append(tick);
    }
  });
  return chart;
}

function lastUsedText(report) {
  if (!report.lastUsedAt) return "Not used yet.";
  const place = report.lastUsedIp ? ` from ${report.lastUsedIp}${report.lastUsedCountry ? ` (${report.lastUsedCountry})` : ""}` : "";
  return `Last used ${when(report.lastUsedAt)}${place}.`;
}

async function openUsage(key) {
  const dialog = $("#usage");
  dialog.dataset.id = key.id;
  $("#usage [data-name]").textContent = key.name;
  $("#usage-last").textContent = "";
  for (const element of dialog.querySelectorAll("[data-chart]")) element.replaceChildren();
  show($("#usage-loading"), true);
  dialog.showModal();
  try {
    const [hours, days] = await Promise.all([
      usageOf(key.id, "hour", lastBuckets(HOUR, 48)),
      usageOf(key.id, "day", lastBuckets(DAY, 30)),
    ]);
    if (dialog.dataset.id !== key.id) return;
    $("#usage-last").textContent = lastUsedText(days.report);
    for (const [name, { points }, options] of [
      ["hours", hours, { label: hourLabel, every: 6, title: "Last 2 days by hour" }],
      ["days", days, { label: dayLabel, every: 5, title: "Last 30 days by day" }],
    ]) {
      $(`#usage p[data-chart="${name}"]`).textContent = summary(points);
      $(`#usage div[data-chart="${name}"]`).replaceChildren(barChart(points, options));
    }
  } catch (error) {
    $("#usage-last").textContent = error.message;
  } finally {
    show($("#usage-loading"), false);
  }
}

$("#revoke-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  await act("Revoking…", async () => {
    await api("DELETE", `/api/v1/api-keys/${selected.id}`);
    $("#revoke").close();
    await load();
    return `Revoked ${selected.name}.`;
  });
});

// ---- activity and history ------------------------------------------------------------------
// The audit log (/api/v1/audit-events), newest first, a page at a time: "More" follows the
// Link header's rel="next" URL. The Activity panel shows every key's events; a key's History
// dialog shows its own.
const EVENTS_PAGE = 20;
const ACTION_LABELS = { "api_key.created": "Created", "api_key.updated": "Changed", "api_key.rotated": "Reset", "api_key.revoked": "Revoked", "api_key.leaked": "Revoked: reported leaked" };
const FIELD_LABELS = { name: "Name", scopes: "Access", allowedIps: "Allowed IPs" };
let keyNames = new Map();

/// One page of events, and the next page's URL while more remain.
async function eventPage(url) {
  const { data, response } = await call("GET", url);
  const next = /<([^>]+)>;\s*rel="next"/.exec(response.headers.get("Link") ?? "");
  return { events: data, next: next ? next[1] : null };
}

function fieldValue(field, value) {
  if (value === null || value === undefined) return field === "allowedIps" ? "any address" : "none";
  if (field === "scopes") return ACCESS_LABELS[value] ?? value;
  if (Array.isArray(value)) return value.join(", ");
  return `“${value}”`;
}

function duration(seconds) {
  if (seconds % 3600 === 0) return seconds === 3600 ? "1 hour" : `${seconds / 3600} hours`;
  if (seconds % 60 === 0) return seconds === 60 ? "1 minute" : `${seconds / 60} minutes`;
  return `${seconds} seconds`;
}

/// What changed, in words.
function describe(event) {
  const details = event.details ?? {};
  switch (event.action) {
    case "api_key.created":
      return [
        `Access: ${fieldValue("scopes", details.scopes)}`,
        details.expiresAt ? `expires ${when(details.expiresAt)}` : "never expires",
        `key ${details.keyPrefix}…`,
      ].join(", ");
    case "api_key.updated":
      return Object.entries(details)
        .map(([field, change]) => `${FIELD_LABELS[field] ?? field}: ${fieldValue(field, change.from)} → ${fieldValue(field, change.to)}`)
        .join("; ");
    case "api_key.rotated": {
      const grace = details.gracePeriodSeconds ? `old key kept for ${duration(details.gracePeriodSeconds)}` : "old key stopped at once";
      return `New key ${details.keyPrefix}…, ${grace}`;
    }
    case "api_key.leaked":
      return details.url ? `Reported at ${details.url}` : "Reported leaked";
    default:
      return "";
  }
}

/// A table of events that grows a page at a time; `withKey` adds the Key column.
function eventFeed(table, empty, more, withKey) {
  let next = null;
  // Each open starts a new feed: a page that arrives for an earlier one (History of another
  // key, say) is dropped rather than added to this one.
  let feed = 0;
  async function fill(url, append) {
    const mine = append ? feed : ++feed;
    const page = await eventPage(url);
    if (mine !== feed) return;
    const body = table.tBodies[0];
    if (!append) body.replaceChildren();
    for (const event of page.events) {
      const row = body.insertRow();
      row.dataset.id = event.id;
      cell(row, when(event.at));
      cell(row, ACTION_LABELS[event.action] ?? event.action);
      if (withKey) cell(row, keyNames.get(event.keyId) ?? event.details?.name ?? event.keyId);
      cell(row, event.actor);
      cell(row, event.actorIp ?? "—");
      cell(row, describe(event));
    }
    next = page.next;
    show(empty, body.rows.length === 0);
    show(table, body.rows.length > 0);
    show(more, Boolean(next));
  }
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      await fill(next, true);
    } catch (error) {
      showError(error.message);
    } finally {
      more.disabled = false;
    }
  });
  return { open: (url) => fill(url, false) };
}

const activity = eventFeed($("#activity-table"), $("#activity-empty"), $("#activity-more"), true);
const keyHistory = eventFeed($("#history-table"), $("#history-empty"), $("#history-more"), false);

function historyButton(key) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "History";
  button.setAttribute("aria-label", `History: ${key.name}`);
  button.addEventListener("click", () => openHistory(key));
  return button;
}

async function openHistory(key) {
  $("#history [data-name]").textContent = key.name;
  $("#history-table tbody").replaceChildren();
  show($("#history-table"), false);
  show($("#history-empty"), false);
  $("#history").showModal();
  try {
    await keyHistory.open(`/api/v1/audit-events?keyId=${encodeURIComponent(key.id)}&limit=${EVENTS_PAGE}`);
  } catch (error) {
    $("#history").close();
    showError(error.message);
  }
}

for (const button of document.querySelectorAll("[data-close]")) {
  button.addEventListener("click", () => button.closest("dialog").close());
}

/// Runs one change with a busy message, and shows its error in the dialog's place if it fails,
/// unless `shownInDialog` shows it beside the field at fault (and returns true).
async function act(busy, change, shownInDialog = () => false) {
  announce(busy);
  showError("");
  try {
    announce(await change());
  } catch (error) {
    announce("");
    if (shownInDialog(error)) return;
    showError(error.message);
    for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  }
}

load();
