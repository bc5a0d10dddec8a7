// The settings page in a real browser (Debian's chromium, driven by playwright-core), against the
// Worker the e2e harness started. Run by tests/e2e/settings.rs:
//   node tests/browser/settings-page.mjs <port> <tenant> <screenshot.png>
// It signs in through the dev path, creates a key and reads it from the one-time reveal, uses it
// on a CRM route (forwarded), resets it (old refused, new works), revokes it (refused), and checks
// that the table shows each state and that no key stays in the page or its storage. A key with
// an IP allow-list works only from inside it until the list is emptied, and a bad line of the
// list is named by its line number in the dialog.

import { chromium } from "playwright-core";
import http from "node:http";
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
  console.log(JSON.stringify({ ok: true, screenshot }));
} finally {
  await browser.close();
}
