// The settings page in a real browser (Debian's chromium, driven by playwright-core), against the
// Worker the e2e harness started. Run by tests/e2e/settings.rs:
//   node tests/browser/settings-page.mjs <port> <tenant> <screenshot.png>
// It signs in through the dev path, creates a key and reads it from the one-time reveal, uses it
// on a CRM route (forwarded), resets it (old refused, new works), revokes it (refused), and checks
// that the table shows each state and that no key stays in the page or its storage. A key with
// an IP allow-list works only from inside it until the list is emptied, and a bad line of the
// list is named by its line number in the dialog. Then the Activity panel and a key's History
// show those changes, newest first, and "More activity" pages through more than a page of them.
// Last, a key reported leaked is shown as "Leaked, revoked", with a banner until it is dismissed.

import { chromium } from "playwright-core";
import http from "node:http";
import crypto from "node:crypto";
import assert from "node:assert/strict";

const [port, tenant, screenshot] = process.argv.slice(2);
const base = `http://${tenant}.localhost:${port}`;

/// A CRM request through the Worker with an API key, from `clientIp` if given: the status and
/// body the client sees.
function crm(key, clientIp) {
  const headers = { host: `${tenant}.localhost:${port}`, "x-api-key": key };
  if (clientIp) headers["cf-connecting-ip"] = clientIp;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path: "/crm/contacts", headers }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/// Reports `key` as GitHub's secret scanning does: the alert signed with the e2e run's private
/// key (ECDSA P-256, SHA-256, base64 DER) and posted on the service's bare host.
function reportLeaked(key, url) {
  const body = JSON.stringify([{ token: key, type: "rally_api_key", url, source: "content" }]);
  const signature = crypto.sign("sha256", Buffer.from(body), process.env.LEAK_SIGNING_KEY).toString("base64");
  const headers = {
    host: `localhost:${port}`,
    "content-type": "application/json",
    "github-public-key-identifier": process.env.LEAK_SIGNING_KEY_ID,
    "github-public-key-signature": signature,
  };
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method: "POST", path: "/api/v1/secret-scanning/github", headers }, (res) => {
      let text = "";
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode, body: text }));
    });
    req.on("error", reject);
    req.end(body);
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
  async function create(name, access, allowedIps = "") {
    await page.getByRole("button", { name: "Create API key" }).click();
    await page.locator("#create-name").fill(name);
    await page.locator("#create").getByLabel(access).check();
    await page.locator("#create-ips").fill(allowedIps);
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
  let res;
  const key = await create("Zapier", "Full Access");
  await create("ETL nightly", "Read only");
  const row = (name) => page.locator("#table tbody tr", { hasText: name });
  await assert.doesNotReject(row("Zapier").getByText("Active").waitFor());
  assert.equal(await row("Zapier").locator("td").nth(2).textContent(), "Full Access");
  assert.equal(await row("ETL nightly").locator("td").nth(2).textContent(), "Read only");
  assert.equal(await row("Zapier").locator("td").nth(3).textContent(), "Any IP");

  // 2b. A key limited to two entries (one a line, blank lines skipped) works only from inside
  // them, and the table counts them.
  const officeKey = await create("Office", "Read only", "203.0.113.0/24\n\n2001:db8::1\n");
  assert.equal(await row("Office").locator("td").nth(3).textContent(), "2 addresses");
  assert.equal(await row("Office").locator("td").nth(3).getAttribute("title"), "203.0.113.0/24\n2001:db8::1/128");
  assert.equal((await crm(officeKey, "203.0.113.9")).status, 200);
  assert.equal((await crm(officeKey, "2001:db8::1")).status, 200);
  res = await crm(officeKey, "198.51.100.1");
  assert.equal(res.status, 403);
  assert.equal(JSON.parse(res.body).error.code, "ip_not_allowed");

  // 2c. A bad line is named by its number, beside the list, and the dialog stays open.
  await page.getByRole("button", { name: "Create API key" }).click();
  await page.locator("#create-name").fill("Typo");
  await page.locator("#create-ips").fill("203.0.113.0/24\n\n10.0.0.1/8");
  await page.locator("#create").getByRole("button", { name: "Save" }).click();
  const createError = page.locator("#create-ips-error");
  await createError.waitFor({ state: "visible" });
  assert.match(await createError.textContent(), /^line 3: "10\.0\.0\.1\/8" has bits set past its prefix; the block is 10\.0\.0\.0\/8\.$/);
  assert.equal(await page.locator("#create-ips").getAttribute("aria-invalid"), "true");
  assert.ok(await page.locator("#create").evaluate((dialog) => dialog.open), "the dialog stays open");
  await page.locator("#create").getByRole("button", { name: "Cancel" }).click();
  assert.equal(await row("Typo").count(), 0, "nothing was created");

  // 2d. Editing: a bad line again by number, then an emptied list lets any address in.
  await page.getByRole("button", { name: "Rename or change access: Office" }).click();
  assert.equal(await page.locator("#edit-ips").inputValue(), "203.0.113.0/24\n2001:db8::1/128");
  await page.locator("#edit-ips").fill("2001:db8::1\n::ffff:203.0.113.9");
  await page.locator("#edit").getByRole("button", { name: "Save" }).click();
  await page.locator("#edit-ips-error").waitFor({ state: "visible" });
  assert.match(await page.locator("#edit-ips-error").textContent(), /^line 2: "::ffff:203\.0\.113\.9" is an IPv4-mapped/);
  await page.locator("#edit-ips").fill("");
  await page.locator("#edit").getByRole("button", { name: "Save" }).click();
  await page.locator("#edit").waitFor({ state: "hidden" });
  await row("Office").getByText("Any IP").waitFor();
  assert.equal((await crm(officeKey, "198.51.100.1")).status, 200);

  // 3. The key works on a CRM route through the Worker: forwarded to the origin.
  res = await crm(key);
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
    [
      ["Revoked", "Zapier", actor], ["Reset", "Zapier", actor], ["Changed", "Office", actor],
      ["Created", "Office", actor], ["Created", "ETL nightly", actor], ["Created", "Zapier", actor],
    ],
  );
  assert.match(activity[1][5], new RegExp(`^New key ${newKey.slice(0, 12)}…, old key stopped at once$`));
  assert.equal(activity[2][5], "Allowed IPs: 203.0.113.0/24, 2001:db8::1/128 → any address");
  assert.match(activity[5][5], new RegExp(`^Access: Full Access, never expires, key ${key.slice(0, 12)}…$`));
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
  await page.waitForFunction(() => document.querySelectorAll("#activity-table tbody tr").length === 26);
  assert.ok(await page.locator("#activity-more").isHidden());
  const ids = await activityRows.evaluateAll((trs) => trs.map((tr) => tr.dataset.id));
  assert.equal(new Set(ids).size, 26, "an event was listed twice");
  assert.deepEqual(
    (await cells(activityRows)).slice(-6).map((c) => c[1]),
    ["Revoked", "Reset", "Changed", "Created", "Created", "Created"],
  );

  // 9. A key reported leaked by GitHub's secret scanning (an alert signed here with Node's
  // crypto, with the key the harness published): its row says so with a link to where it was
  // found, and a banner stays until an admin dismisses it, also after a reload.
  assert.equal(await page.locator("#leak-banner").isHidden(), true);
  const leakedKey = await create("Notebook", "Read only");
  const foundAt = "https://github.com/octo/notebooks/blob/main/.env";
  res = await reportLeaked(leakedKey, foundAt);
  assert.equal(res.status, 200, res.body);
  assert.equal(JSON.parse(res.body)[0].label, "true_positive");
  assert.equal((await crm(leakedKey)).status, 401);
  await page.reload();
  const banner = page.locator("#leak-banner");
  await banner.waitFor({ state: "visible" });
  assert.match(await banner.locator("li").textContent(), /^Notebook, reported /);
  assert.equal(await banner.getByRole("link", { name: "Where it was found" }).getAttribute("href"), foundAt);
  await row("Notebook").getByText("Leaked, revoked").waitFor();
  assert.equal(await row("Notebook").getByRole("link", { name: "Where it was found" }).getAttribute("href"), foundAt);
  assert.equal(await row("Notebook").getByRole("button", { name: /^Revoke/ }).count(), 0);
  await activityRows.first().getByText("Revoked: reported leaked").waitFor();
  assert.equal((await cells(activityRows))[0][3], "secret-scanning:github");
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-leaked.png") });
  await banner.getByRole("button", { name: "Dismiss" }).click();
  await banner.waitFor({ state: "hidden" });
  await page.reload();
  await row("Notebook").getByText("Leaked, revoked").waitFor();
  assert.equal(await banner.isHidden(), true, "the banner came back after it was dismissed");
  // Only the dismissal mark is stored, and no key is in the page.
  assert.deepEqual(await page.evaluate(() => Object.keys(localStorage)), ["rally.leaks.dismissedThrough"]);
  assert.ok(!(await page.content()).includes(leakedKey), "the leaked key is in the page");
  console.log(JSON.stringify({ ok: true, screenshot }));
} finally {
  await browser.close();
}
