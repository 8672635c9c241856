// The client-demo page served from ANOTHER origin (a tiny static server in this process) and
// pointed at im-server with ?server=…:
//   - server A lists the page's origin in FRONTEND_URL: login and connect work;
//   - server B lists some other origin: the page names the failure — the login fetch is blocked by
//     CORS, polling fails with "xhr poll error" explained as CORS, and a websocket (browsers apply
//     no CORS to it, the server checks Origin itself) gets error ORIGIN_DENIED then a disconnect.
// Screenshots: test-artifacts/browser/cross-*.png.

import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  stepper,
  ADMIN,
  startServer,
  startStaticServer,
  launchBrowser,
  shot,
  eventLog,
  waitForLogEntry,
} from "./lib.mjs";

const STEP_MS = 60_000;

describe("client-demo, cross origin", { timeout: 240_000 }, () => {
  let statics;
  let allowed; // FRONTEND_URL = the page's origin
  let denied; // FRONTEND_URL = some other origin
  let browser;
  let page;

  const step = stepper("cross", () => ({ page, servers: [allowed, denied], browser }), STEP_MS);

  before(async () => {
    statics = await startStaticServer();
    allowed = await startServer({ FRONTEND_URL: `http://app.example.invalid,${statics.origin}` });
    denied = await startServer({ FRONTEND_URL: "http://app.example.invalid" });
    browser = await launchBrowser();
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
    await allowed?.stop();
    await denied?.stop();
    await statics?.stop();
  });

  step("allowed origin: ?server= points the page at im-server; login works", async () => {
    await page.goto(`${statics.origin}/?server=${encodeURIComponent(allowed.url)}`);
    await page.waitForFunction(() => window.imDemo && typeof window.io === "function");
    assert.equal(await page.inputValue("#api-base"), allowed.url);
    assert.match(await page.textContent("#api-base-note"), /from \?server=/);
    assert.match(await page.textContent("#api-base-note"), new RegExp(statics.origin.replace(/\./g, "\\.")));
    await page.fill("#username", ADMIN.username);
    await page.fill("#password", ADMIN.password);
    await page.click("#login-btn");
    await page.waitForFunction(() => /Logged in as admin/.test(document.querySelector("#login-result").textContent));
    const token = await page.inputValue("#token");
    assert.equal(await page.textContent("#token-length"), `${token.length} chars`);
    await shot(page, "cross-01-allowed-logged-in", "#card-login");
  });

  step("allowed origin: connect (polling → websocket) → connected; validate over CORS", async () => {
    await page.click("#connect-btn");
    await page.waitForFunction(() => document.querySelector("#status").dataset.state === "connected");
    assert.match(await page.textContent("#connected-info"), /Authenticated ✓ as admin/);
    // The bearer GET needs a CORS preflight allowing Authorization: it must pass too.
    await page.click("#validate-btn");
    await page.waitForFunction(() => /Valid ✓/.test(document.querySelector("#diag-summary").textContent));
    await shot(page, "cross-02-allowed-connected", "#connected-info");
    await page.click("#disconnect-btn");
  });

  step("denied origin: the login fetch is blocked and the page says CORS, naming its origin", async () => {
    await page.goto(`${statics.origin}/?server=${encodeURIComponent(denied.url)}`);
    await page.waitForFunction(() => window.imDemo && typeof window.io === "function");
    await page.click("#login-btn");
    await page.waitForFunction(() => /request blocked/.test(document.querySelector("#login-result").textContent));
    const text = await page.textContent("#login-result");
    assert.match(text, /likely CORS/);
    assert.ok(text.includes(statics.origin), `names the page origin: ${text}`);
    assert.match(text, /cors\.origins/);
    assert.equal(await page.inputValue("#token"), "", "no token was obtained");
    await waitForLogEntry(page, "http", /CORS/);
    await shot(page, "cross-03-denied-login-cors", "#card-login");
  });

  step("denied origin: polling connect → connect_error \"xhr poll error\" explained as CORS", async () => {
    // A token obtained outside the browser (node sends no Origin), pasted into the token box.
    const token = await denied.loginToken(ADMIN);
    await page.fill("#token", token);
    await page.selectOption("#transport", "polling");
    await page.click("#connect-btn");
    await waitForLogEntry(page, "connect_error", /xhr poll error/);
    const entries = await eventLog(page);
    const ce = entries.find((e) => e.event === "connect_error");
    assert.match(ce.text, /CORS/);
    assert.ok(!entries.some((e) => e.event === "connected"), "never authenticated");
    // reconnection is off: the page must not claim it is retrying
    await page.waitForFunction(() => document.querySelector("#status").dataset.state === "disconnected");
    assert.match(await page.textContent("#status"), /disconnected \(xhr poll error\)/);
    assert.equal(await page.textContent("#connect-btn"), "Connect");
    await shot(page, "cross-04-denied-polling", "#card-connect");
  });

  step("denied origin: websocket connect → error ORIGIN_DENIED, then the server's disconnect", async () => {
    await page.click("#clear-log-btn");
    await page.selectOption("#transport", "websocket");
    await page.click("#connect-btn");
    await waitForLogEntry(page, "error", /ORIGIN_DENIED/);
    await waitForLogEntry(page, "disconnect", /io server disconnect/);
    const entries = await eventLog(page);
    assert.ok(!entries.some((e) => e.event === "connected"), "never authenticated");
    const err = entries.find((e) => e.event === "error");
    assert.match(err.text, /cors\.origins/, "the log explains the code");
    assert.match(await page.textContent("#status"), /ORIGIN_DENIED/);
    assert.match(await page.textContent("#expiry-banner"), /ORIGIN_DENIED/);
    // the error-code table explains it too
    assert.match(await page.textContent('#error-codes tr[data-code="ORIGIN_DENIED"]'), /cors\.origins/);
    await shot(page, "cross-05-denied-websocket-origin-denied", "#card-connect");
  });

  step("no uncaught exception in the page", async () => {
    assert.deepEqual(browser.pageErrors, []);
  });
});
