// The settings page's usage charts in a real browser (Debian's chromium, driven by
// playwright-core), against the Worker the e2e harness started. Run by tests/e2e/usage.rs:
//   node tests/browser/usage-chart.mjs <port> <tenant> <screenshot.png>
// 1. Real counts: a key makes 5 allowed and 2 forbidden requests from one address; the table's
//    sparkline and the usage dialog's two charts show exactly those, with "last used from".
// 2. Given counts: another key's usage answers are replaced with a fixed report (every outcome,
//    many buckets); each bar of each chart must carry exactly the counts it was given. The
//    dialog is then photographed for the README.

import { chromium } from "playwright-core";
import http from "node:http";
import assert from "node:assert/strict";

const [port, tenant, screenshot] = process.argv.slice(2);
const base = `http://${tenant}.localhost:${port}`;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const OUTCOMES = ["allowed", "forbidden", "ipDenied", "revoked", "expired"];
const ADDRESS = "203.0.113.50";

/// A CRM request through the Worker with an API key, from ADDRESS: its status.
function crm(method, key) {
  return new Promise((resolve, reject) => {
    const headers = { host: `${tenant}.localhost:${port}`, "x-api-key": key, "cf-connecting-ip": ADDRESS };
    const req = http.request({ host: "127.0.0.1", port, method, path: "/crm/usage-chart", headers }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("error", reject);
    req.end();
  });
}

/// Each bar of a chart as { start, total, allowed, ... } from its data attributes.
async function bars(page, chart) {
  return page.locator(`#usage div[data-chart="${chart}"] g.bucket`).evaluateAll((groups) =>
    groups.map((g) => ({
      start: g.dataset.start,
      total: Number(g.dataset.total),
      allowed: Number(g.dataset.allowed),
      forbidden: Number(g.dataset.forbidden),
      ipDenied: Number(g.dataset.ipdenied),
      revoked: Number(g.dataset.revoked),
      expired: Number(g.dataset.expired),
    })));
}

/// Sums of each outcome over a chart's bars.
function sums(list) {
  return Object.fromEntries(OUTCOMES.map((o) => [o, list.reduce((sum, bar) => sum + bar[o], 0)]));
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  // Uncaught errors of the page's script. (The console also reports the 401 of the first load,
  // before sign-in, which is how the page learns to offer it.)
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));

  await page.goto(`${base}/settings/api-keys`);
  await page.getByRole("button", { name: "Sign in as a development admin" }).click();
  await page.getByText("No API keys yet").waitFor();
  // Keys made through the API the page uses, with the page's own session.
  const create = (name) => page.evaluate(async (name) => {
    const response = await fetch("/api/v1/api-keys", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name, scopes: "read" }),
    });
    return response.json();
  }, name);
  const counted = await create("Counted");
  const given = await create("Given");

  // 1. Real counts.
  for (let i = 0; i < 5; i++) assert.equal(await crm("GET", counted.key), 200);
  for (let i = 0; i < 2; i++) assert.equal(await crm("POST", counted.key), 403);
  const row = (name) => page.locator("#table tbody tr", { hasText: name });
  const deadline = Date.now() + 15_000;
  for (;;) {
    await page.reload();
    const cell = row("Counted").locator("[data-usage]");
    await cell.locator("svg").waitFor();
    if ((await cell.getAttribute("data-usage")) === "7") break;
    assert.ok(Date.now() < deadline, `the sparkline shows ${await cell.getAttribute("data-usage")} requests, not 7`);
    await page.waitForTimeout(500);
  }
  assert.equal(await row("Counted").locator("svg.spark rect").count(), 30);
  assert.equal(await row("Counted").locator("svg.spark").getAttribute("aria-label"), "7 requests in the last 30 days");
  await page.getByRole("button", { name: "Usage: Counted" }).click();
  await page.locator('#usage div[data-chart="days"] svg').waitFor();
  const lastUsed = await page.locator("#usage-last").textContent();
  assert.match(lastUsed, new RegExp(`^Last used .+ from ${ADDRESS.replaceAll(".", "\\.")}( \\([A-Z0-9]{2}\\))?\\.$`));
  const hours = await bars(page, "hours");
  const days = await bars(page, "days");
  assert.equal(hours.length, 48);
  assert.equal(days.length, 30);
  for (const list of [hours, days]) {
    assert.deepEqual(sums(list), { allowed: 5, forbidden: 2, ipDenied: 0, revoked: 0, expired: 0 });
    // All in the current bucket, the last bar.
    assert.deepEqual({ ...list.at(-1), start: undefined }, { start: undefined, total: 7, allowed: 5, forbidden: 2, ipDenied: 0, revoked: 0, expired: 0 });
  }
  assert.equal(await page.locator('#usage p[data-chart="hours"]').textContent(), "7 requests: 5 allowed, 2 forbidden.");
  await page.getByRole("button", { name: "Close" }).click();

  // 2. Given counts: a fixed report for the "Given" key, whatever the range asked for.
  const now = Date.now();
  const fixture = (granularity) => {
    const step = granularity === "hour" ? HOUR : DAY;
    const last = Math.floor(now / step) * step;
    const count = granularity === "hour" ? 48 : 30;
    const buckets = [];
    for (let i = 0; i < count; i++) {
      if (i % 7 === 3) continue; // some empty buckets, left out as the API does
      const start = last - (count - 1 - i) * step;
      const wave = Math.round(40 + 30 * Math.sin(i / 3));
      const scale = granularity === "hour" ? 1 : 12;
      buckets.push({
        start: new Date(start).toISOString().replace(".000Z", "Z"),
        allowed: wave * scale, forbidden: (i % 5) * scale, ipDenied: i % 11 === 0 ? 3 * scale : 0,
        revoked: i > count - 6 ? 4 * scale : 0, expired: i % 13 === 1 ? 2 * scale : 0,
      });
    }
    return {
      keyId: given.id, granularity, from: new Date(last - (count - 1) * step).toISOString(), to: new Date(last + step).toISOString(),
      lastUsedAt: new Date(now - 60_000).toISOString(), lastUsedIp: "2001:db8::7", lastUsedCountry: "DE", buckets,
    };
  };
  const served = {};
  await page.route(`**/api/v1/api-keys/${given.id}/usage*`, (route) => {
    const granularity = new URL(route.request().url()).searchParams.get("granularity");
    served[granularity] = fixture(granularity);
    route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(served[granularity]) });
  });
  await page.reload();
  await row("Given").locator("[data-usage] svg").waitFor();
  await page.getByRole("button", { name: "Usage: Given" }).click();
  await page.locator('#usage div[data-chart="hours"] svg').waitFor();
  assert.equal(await page.locator("#usage-last").textContent().then((t) => t.endsWith(" from 2001:db8::7 (DE).")), true);
  for (const [chart, granularity] of [["hours", "hour"], ["days", "day"]]) {
    const shown = await bars(page, chart);
    const expected = new Map(served[granularity].buckets.map((b) => [Date.parse(b.start), b]));
    assert.equal(shown.length, granularity === "hour" ? 48 : 30);
    for (const bar of shown) {
      const bucket = expected.get(Date.parse(bar.start)) ?? { allowed: 0, forbidden: 0, ipDenied: 0, revoked: 0, expired: 0 };
      for (const outcome of OUTCOMES) assert.equal(bar[outcome], bucket[outcome], `${chart} ${bar.start} ${outcome}`);
      assert.equal(bar.total, OUTCOMES.reduce((sum, o) => sum + bucket[o], 0));
      expected.delete(Date.parse(bar.start));
    }
    assert.equal(expected.size, 0, `${chart}: buckets given but not drawn`);
    // The tallest bar reaches the top of the plot, whatever the scale.
    const heights = await page.locator(`#usage div[data-chart="${chart}"] g.bucket`).evaluateAll((groups) =>
      groups.map((g) => [...g.querySelectorAll("rect")].reduce((sum, r) => sum + Number(r.getAttribute("height")), 0)));
    assert.ok(Math.abs(Math.max(...heights) - 156) < 1, `${chart}: tallest bar ${Math.max(...heights)}`);
  }
  await page.locator("#usage").screenshot({ path: screenshot });
  assert.deepEqual(errors, [], `errors in the page: ${errors.join("; ")}`);
  console.log(JSON.stringify({ ok: true, screenshot }));
} finally {
  await browser.close();
}
