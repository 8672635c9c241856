// The client-demo page, same origin, in headless Chromium: log in as admin, read the token panel,
// connect to /im, receive a message from kefu1 (a socket.io-client in this process), send one
// back, log out and watch the TOKEN_REVOKED kick in the event log. Screenshots of every step go to
// test-artifacts/browser/flow-*.png.

import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import {
  stepper,
  ADMIN,
  KEFU,
  startServer,
  launchBrowser,
  shot,
  eventLog,
  waitForLogEntry,
  nextEvent,
  within,
} from "./lib.mjs";
import { startBackend } from "../js/bridge-backend.mjs";

const STEP_MS = 60_000;

describe("client-demo, same origin", { timeout: 240_000 }, () => {
  let server;
  let backend; // the app's backend behind the bridge (verifies every signature)
  let browser;
  let page;
  let kefu; // socket.io-client socket of kefu1
  let kefuToken;
  let adminToken;
  const tag = Math.random().toString(36).slice(2, 8);

  const step = stepper("flow", () => ({ page, servers: [server], browser }), STEP_MS);

  before(async () => {
    backend = await startBackend({ secret: "browser-bridge-secret-0123456789" });
    server = await startServer({ IM_BRIDGE__URL: backend.url, IM_BRIDGE__SECRET: "browser-bridge-secret-0123456789" });
    browser = await launchBrowser();
    page = browser.page;
  });

  after(async () => {
    try {
      kefu?.close();
    } catch {
      /* ignore */
    }
    await browser?.close();
    await server?.stop();
    await backend?.close();
  });

  step("the page loads from the server with the vendored socket.io-client", async () => {
    await page.goto(`${server.url}/client-demo/`);
    await page.waitForFunction(() => window.imDemo && typeof window.io === "function");
    assert.match(await page.textContent("#lib-version"), /socket\.io-client loaded/);
    assert.match(await page.textContent("#api-base-note"), /same-origin/);
    assert.equal(await page.inputValue("#api-base"), server.url);
    assert.equal(await page.getAttribute("#status", "data-state"), "disconnected");
    await shot(page, "flow-01-loaded", "#card-login");
  });

  step("log in as admin: token length, header and claims are shown", async () => {
    await page.fill("#username", ADMIN.username);
    await page.fill("#password", ADMIN.password);
    await page.click("#login-btn");
    await page.waitForFunction(() => /Logged in as admin/.test(document.querySelector("#login-result").textContent));
    adminToken = await page.inputValue("#token");
    assert.match(adminToken, /^[\w-]+\.[\w-]+\.[\w-]+$/, "the token box holds a JWT");
    assert.equal(await page.textContent("#token-length"), `${adminToken.length} chars`);
    const header = JSON.parse(await page.textContent("#token-header"));
    assert.equal(header.alg, "HS256");
    const claims = JSON.parse(await page.textContent("#token-claims"));
    assert.equal(String(claims.sub), String(ADMIN.id));
    assert.equal(typeof claims.exp, "number");
    assert.equal(typeof claims.iat, "number");
    assert.ok(claims.exp > Date.now() / 1000, "exp in the future");
    // and they agree with the token itself
    const decoded = JSON.parse(Buffer.from(adminToken.split(".")[1], "base64url").toString());
    assert.deepEqual(claims, decoded);
    assert.match(await page.textContent("#token-countdown"), /^Expires in /);
    assert.match(await page.textContent("#token-times"), /expires \(exp\)/);
    await shot(page, "flow-02-logged-in", "#card-token");
  });

  step("connect to /im with the token in auth → connected as admin", async () => {
    assert.equal(await page.inputValue("#token-source"), "auth");
    await page.click("#connect-btn");
    await page.waitForFunction(() => document.querySelector("#status").dataset.state === "connected");
    assert.match(await page.textContent("#status"), /connected as admin \(#1\)/);
    assert.match(await page.textContent("#connected-info"), /Authenticated ✓ as admin \(user 1\)/);
    assert.match(await page.textContent("#connected-info"), /lastMessageId\s*null \(no message yet\)/);
    const live = await page.evaluate(() => {
      const s = window.imDemo.socket;
      return { connected: s.connected, nsp: s.nsp, authToken: s.auth && s.auth.token };
    });
    assert.equal(live.connected, true);
    assert.equal(live.nsp, "/im");
    assert.equal(live.authToken, adminToken, "the token travels in the handshake auth");
    await waitForLogEntry(page, "connected", /"userId": ?1/);
    await shot(page, "flow-03-connected", "#card-connect");
  });

  step("kefu1 (socket.io-client in the test) sends to admin → #messages shows it", async () => {
    kefuToken = await server.loginToken(KEFU);
    kefu = io(`${server.url}/im`, { auth: { token: kefuToken }, transports: ["websocket"], reconnection: false, forceNew: true });
    const info = await nextEvent(kefu, "connected");
    assert.equal(info.userId, KEFU.id);
    const content = `hello admin from kefu1 ${tag}`;
    const ack = await within(10_000, "send_message ack", kefu.emitWithAck("send_message", { to: ADMIN.id, content }));
    assert.equal(ack.ok, true, JSON.stringify(ack));
    await page.waitForFunction(
      (c) => [...document.querySelectorAll("#messages .msg.theirs")].some((m) => m.textContent.includes(c)),
      content,
    );
    const meta = await page.textContent(`#messages .msg[data-id="${ack.id}"] .msg-meta`);
    assert.match(meta, /from 2 → 1/);
    await waitForLogEntry(page, "message", new RegExp(content));
    await shot(page, "flow-04-message-received", "#messages");
  });

  step("the page sends to kefu1 → the test client receives it", async () => {
    const content = `hello kefu1 from the page ${tag}`;
    const got = nextEvent(kefu, "message", (m) => m && m.content === content);
    await page.fill("#msg-to", String(KEFU.id));
    await page.fill("#msg-content", content);
    await page.click("#send-btn");
    const m = await got;
    assert.equal(m.from, ADMIN.id);
    assert.equal(m.to, KEFU.id);
    assert.equal(typeof m.id, "number");
    assert.match(m.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    await page.waitForFunction(() => /ack: ok/.test(document.querySelector("#send-result").textContent));
    assert.match(await page.textContent(`#messages .msg.mine[data-id="${m.id}"]`), new RegExp(content));
    // both messages are in the stored history
    const hist = await server.http("GET", `/api/messages?with=${ADMIN.id}`, { token: kefuToken });
    assert.equal(hist.status, 200, JSON.stringify(hist.body));
    const contents = JSON.stringify(hist.body.data);
    assert.ok(contents.includes(content) && contents.includes(`hello admin from kefu1 ${tag}`), contents);
    await shot(page, "flow-05-message-sent", "#messages");
  });

  step("messages sent while the page was away come back with messages:sync since", async () => {
    const seen = Number(await page.inputValue("#sync-after"));
    assert.ok(seen > 0, "the sync box follows the newest message shown");
    await page.click("#disconnect-btn");
    await page.waitForFunction(() => document.querySelector("#status").dataset.state === "disconnected");
    const missed = [];
    for (const n of [1, 2]) {
      const content = `while you were away ${n} ${tag}`;
      const ack = await within(10_000, "send_message ack", kefu.emitWithAck("send_message", { to: ADMIN.id, content }));
      assert.equal(ack.ok, true, JSON.stringify(ack));
      missed.push({ id: ack.id, content });
    }
    await page.click("#connect-btn");
    await page.waitForFunction(() => document.querySelector("#status").dataset.state === "connected");
    assert.match(await page.textContent("#connected-info"), new RegExp(`lastMessageId\\s*${missed[1].id}`));
    assert.equal(Number(await page.inputValue("#sync-after")), seen, "still where the page left off");
    for (const m of missed) assert.equal(await page.locator(`#messages .msg[data-id="${m.id}"]`).count(), 0);
    await page.click("#sync-btn");
    await page.waitForFunction(() => /up to date/.test(document.querySelector("#sync-result").textContent));
    assert.match(await page.textContent("#sync-result"), /^2 message\(s\) after #/);
    for (const m of missed) assert.match(await page.textContent(`#messages .msg[data-id="${m.id}"]`), new RegExp(m.content));
    assert.equal(Number(await page.inputValue("#sync-after")), missed[1].id);
    await shot(page, "flow-06-synced", "#card-messages");
  });

  step("the Emit any event card sends a bridged event with JSON arguments and shows the backend's ack", async () => {
    await page.fill("#emit-event", "echo");
    await page.fill("#emit-args", '[{"room":"r1"},"two"]');
    await page.click("#emit-btn");
    await page.waitForFunction(() => /ack: /.test(document.querySelector("#emit-result").textContent));
    const shown = await page.textContent("#emit-result");
    assert.match(shown, /"ok": true/);
    assert.match(shown, /"args": \[\{"room": "r1"\}, "two"\]|"room": "r1"/);
    const call = backend.calls.findLast((c) => c.event === "echo");
    assert.deepEqual(call.body.args, [{ room: "r1" }, "two"]);
    assert.equal(call.body.user.id, ADMIN.id);
    assert.equal(call.signatureOk, true);
    await page.fill("#emit-args", "[not json");
    await page.click("#emit-btn");
    await page.waitForFunction(() => /not JSON/.test(document.querySelector("#emit-result").textContent));
    await shot(page, "flow-05b-emit-any", "#card-emit");
  });

  step("log out → event log shows error TOKEN_REVOKED, then the server's disconnect", async () => {
    await page.click("#logout-btn");
    await page.waitForFunction(() => /Logged out/.test(document.querySelector("#logout-result").textContent));
    await waitForLogEntry(page, "error", /TOKEN_REVOKED/);
    await waitForLogEntry(page, "disconnect", /io server disconnect/);
    const entries = await eventLog(page);
    const iErr = entries.findIndex((e) => e.event === "error" && /TOKEN_REVOKED/.test(e.text));
    const iDisc = entries.findIndex((e) => e.event === "disconnect" && /io server disconnect/.test(e.text));
    assert.ok(iErr >= 0 && iDisc > iErr, "error TOKEN_REVOKED comes before the disconnect");
    assert.equal(entries[iErr].dir, "in");
    await page.waitForFunction(() => document.querySelector("#status").dataset.state === "disconnected");
    assert.match(await page.textContent("#status"), /TOKEN_REVOKED/);
    assert.match(await page.textContent("#expiry-banner"), /TOKEN_REVOKED/);
    assert.equal(await page.evaluate(() => window.imDemo.socket.connected), false);
    // the revoked token is refused over HTTP too
    const v = await server.http("GET", "/auth/validate", { token: adminToken });
    assert.equal(v.status, 401);
    assert.equal(v.body.code, "TOKEN_REVOKED");
    // kefu1's socket is untouched
    assert.equal(kefu.connected, true);
    await shot(page, "flow-07-logged-out", "#logout-result");
  });

  step("the event log (meant to be copied into bug reports) never shows the password or a whole token", async () => {
    const log = await page.textContent("#event-log");
    assert.ok(!log.includes(ADMIN.password), "no password in the event log");
    assert.ok(!log.includes(adminToken), "no whole token in the event log");
    assert.match(log, /"password": "•••"/);
  });

  step("no uncaught exception in the page", async () => {
    assert.deepEqual(browser.pageErrors, []);
  });
});
