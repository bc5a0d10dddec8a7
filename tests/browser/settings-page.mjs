// The settings page in a real browser (Debian's chromium, driven by playwright-core), against the
// Worker the e2e harness started. Run by tests/e2e/settings.rs:
//   node tests/browser/settings-page.mjs <port> <tenant> <screenshot.png>
// It signs in through the dev path, creates a key and reads it from the one-time reveal, uses it
// on a CRM route (forwarded), resets it (old refused, new works), revokes it (refused), and checks
// that the table shows each state and that no key stays in the page or its storage. Then the
// Activity panel and a key's History show those changes, newest first, and "More activity" pages
// through more than a page of them.

import { chromium } from "playwright-core";
import http from "node:http";
import assert from "node:assert/strict";

const [port, tenant, screenshot] = process.argv.slice(2);
const base = `http://${tenant}.localhost:${port}`;

/// A CRM request through the Worker with an API key: the status and body the client sees.
function crm(key) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path: "/crm/contacts", headers: { host: `${tenant}.localhost:${port}`, "x-api-key": key } }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  const page = await context.newPage();

  // 1. Sign in through the dev path.
  await page.goto(`${base}/settings/api-keys`);
  await page.getByRole("button", { name: "Sign in as a development admin" }).click();
  await page.getByText("No API keys yet").waitFor();

  // 2. Create a key with Full Access and read it from the reveal.
  async function create(name, access) {
    await page.getByRole("button", { name: "Create API key" }).click();
    await page.locator("#create-name").fill(name);
    await page.locator("#create").getByLabel(access).check();
    await page.locator("#create").getByRole("button", { name: "Save" }).click();
    await page.locator("#reveal").waitFor({ state: "visible" });
    await page.getByRole("button", { name: "Copy" }).click();
    await page.getByText("Copied to the clipboard.").waitFor();
    const key = await page.locator("#reveal-key").inputValue();
    assert.match(key, /^rk_live_[0-9a-f]{32}$/);
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key);
    await page.getByRole("button", { name: "I have copied it" }).click();
    await page.locator("#reveal").waitFor({ state: "hidden" });
    // Nothing secret stays in the DOM or in storage once the reveal is closed.
    assert.ok(!(await page.content()).includes(key), "the key is still in the DOM");
    assert.equal(await page.evaluate(() => localStorage.length + sessionStorage.length), 0);
    return key;
  }
  const key = await create("Zapier", "Full Access");
  await create("ETL nightly", "Read only");
  const row = (name) => page.locator("#table tbody tr", { hasText: name });
  await assert.doesNotReject(row("Zapier").getByText("Active").waitFor());
  assert.equal(await row("Zapier").locator("td").nth(2).textContent(), "Full Access");
  assert.equal(await row("ETL nightly").locator("td").nth(2).textContent(), "Read only");

  // 3. The key works on a CRM route through the Worker: forwarded to the origin.
  let res = await crm(key);
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.body), { origin: "ok" });
  await page.screenshot({ path: screenshot, fullPage: true });

  // 4. Reset it with no grace period: the old key is refused, the new one works.
  await page.getByRole("button", { name: "Reset key: Zapier" }).click();
  await page.locator("#reset-grace").selectOption("0");
  await page.locator("#reset").getByRole("button", { name: "Reset key" }).click();
  await page.locator("#reveal").waitFor({ state: "visible" });
  const newKey = await page.locator("#reveal-key").inputValue();
  await page.getByRole("button", { name: "I have copied it" }).click();
  assert.notEqual(newKey, key);
  assert.equal((await crm(key)).status, 401);
  assert.equal((await crm(newKey)).status, 200);
  assert.equal((await row("Zapier").locator("code").textContent()), `${newKey.slice(0, 12)}…`);

  // 5. Revoke it: refused from then on, and the table says so.
  await page.getByRole("button", { name: "Revoke: Zapier" }).click();
  await page.locator("#revoke").getByRole("button", { name: "Revoke" }).click();
  await row("Zapier").getByText("Revoked").waitFor();
  res = await crm(newKey);
  assert.equal(res.status, 401);
  assert.equal(await row("ETL nightly").getByText("Active").count(), 1);

  // 6. The Activity panel lists those changes, newest first, with who made them.
  const actor = `dev-admin@${tenant}.localhost`;
  const activityRows = page.locator("#activity-table tbody tr");
  const cells = (rows) => rows.evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  await activityRows.first().getByText("Revoked").waitFor();
  const activity = await cells(activityRows);
  assert.deepEqual(
    activity.map(([, event, name, by]) => [event, name, by]),
    [["Revoked", "Zapier", actor], ["Reset", "Zapier", actor], ["Created", "ETL nightly", actor], ["Created", "Zapier", actor]],
  );
  assert.match(activity[1][5], new RegExp(`^New key ${newKey.slice(0, 12)}…, old key stopped at once$`));
  assert.match(activity[3][5], new RegExp(`^Access: Full Access, never expires, key ${key.slice(0, 12)}…$`));
  const content = await page.content();
  assert.ok(!content.includes(key) && !content.includes(newKey), "a key is in the page");

  // 7. A key's History: its own changes only.
  await page.getByRole("button", { name: "History: Zapier" }).click();
  await page.locator("#history-table tbody tr").first().waitFor();
  assert.deepEqual((await cells(page.locator("#history-table tbody tr"))).map((c) => c[1]), ["Revoked", "Reset", "Created"]);
  await page.locator("#history").getByRole("button", { name: "Close" }).click();
  await page.locator("#history").waitFor({ state: "hidden" });

  // 8. More than a page (20) of activity: "More activity" follows the Link header to the end.
  const etl = await row("ETL nightly").getAttribute("data-id");
  const renames = await page.evaluate(async (id) => {
    const statuses = [];
    for (let i = 0; i < 20; i++) {
      const response = await fetch(`/api/v1/api-keys/${id}`, { method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: `ETL nightly ${i}` }) });
      statuses.push(response.status);
    }
    return statuses;
  }, etl);
  assert.deepEqual(renames, Array(20).fill(200));
  await page.reload();
  await activityRows.first().getByText("Changed").waitFor();
  assert.equal(await activityRows.count(), 20);
  assert.match((await cells(activityRows))[0][5], /^Name: “ETL nightly 18” → “ETL nightly 19”$/);
  await page.locator("#activity-more").click();
  await page.waitForFunction(() => document.querySelectorAll("#activity-table tbody tr").length === 24);
  assert.ok(await page.locator("#activity-more").isHidden());
  const ids = await activityRows.evaluateAll((trs) => trs.map((tr) => tr.dataset.id));
  assert.equal(new Set(ids).size, 24, "an event was listed twice");
  assert.deepEqual((await cells(activityRows)).slice(-4).map((c) => c[1]), ["Revoked", "Reset", "Created", "Created"]);
  console.log(JSON.stringify({ ok: true, screenshot }));
} finally {
  await browser.close();
}
