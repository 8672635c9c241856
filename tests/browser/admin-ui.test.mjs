// Contract §13 with the real @socket.io/admin-ui in headless Chromium, served by im-server at
// /admin/ from its vendored build: log in through the UI's own form, see the test's /im sockets
// (user, transport, address; a token header shown redacted), disconnect one with the UI's
// button (that socket gets `error FORBIDDEN` then the server disconnect), and never a request
// leaving 127.0.0.1. Screenshots go to test-artifacts/browser/admin-*.png.

import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { io } from "socket.io-client";
import { ADMIN, KEFU, SERVER_BIN, startServer, launchBrowser, shot, nextEvent, within, stepper } from "./lib.mjs";

const STEP_MS = 60_000;
const OPS = { username: "ops", password: "ops-pass-ui" };

describe("Admin UI in the browser", { timeout: 240_000 }, () => {
  let server;
  let browser;
  let page;
  const sockets = {}; // name → {socket, id, events}
  const outside = []; // requests the page tried to send off this machine
  let kefuToken;

  const step = stepper("admin", () => ({ page, servers: [server], browser }), STEP_MS);

  /** A socket.io-client /im socket from this process, recording what the server sends it. */
  async function imSocket(name, token, opts) {
    const socket = io(`${server.url}/im`, { reconnection: false, forceNew: true, ...opts });
    const events = [];
    socket.onAny((ev, ...args) => events.push([ev, ...args]));
    socket.on("disconnect", (reason) => events.push(["disconnect", reason]));
    await nextEvent(socket, "connected");
    sockets[name] = { socket, id: socket.id, events };
  }

  before(async () => {
    const hash = execFileSync(SERVER_BIN, ["admin", "hash-password", "--password", OPS.password], {
      env: { PATH: process.env.PATH },
    })
      .toString()
      .trim();
    server = await startServer({
      IM_ADMIN__USERNAME: OPS.username,
      IM_ADMIN__PASSWORD_HASH: hash,
      IM_ADMIN__READONLY: "false",
    });
    const adminToken = await server.loginToken(ADMIN);
    kefuToken = await server.loginToken(KEFU);
    await imSocket("admin", adminToken, { transports: ["websocket"], auth: { token: adminToken } });
    // polling with the token in a header: the UI's "Initial HTTP request" must show it redacted
    await imSocket("kefu", kefuToken, {
      transports: ["polling"],
      extraHeaders: { authorization: `Bearer ${kefuToken}` },
    });
    browser = await launchBrowser();
    page = browser.page;
    await browser.context.route(
      (url) => !["127.0.0.1", "localhost"].includes(url.hostname),
      (route) => {
        outside.push(route.request().url());
        return route.abort();
      },
    );
  });

  after(async () => {
    for (const s of Object.values(sockets)) s.socket.close();
    await browser?.close();
    await server?.stop();
  });

  step("the page loads from /admin/ and asks for the connection", async () => {
    await page.goto(`${server.url}/admin/`);
    await page.getByLabel("Server URL").waitFor();
    assert.equal(await page.title(), "Socket.IO Admin UI");
    await shot(page, "admin-01-login-form");
  });

  step("a wrong password is refused in the form", async () => {
    await page.getByLabel("Server URL").fill(server.url);
    await page.getByLabel("Username").fill(OPS.username);
    await page.getByLabel("Password").fill("not-the-password");
    await page.getByRole("button", { name: "Connect" }).click();
    await page.getByText("INVALID_CREDENTIALS").waitFor();
    await shot(page, "admin-02-refused");
  });

  step("log in through the form: the dashboard shows this server", async () => {
    await page.getByLabel("Password").fill(OPS.password);
    await page.getByRole("button", { name: "Connect" }).click();
    await page.getByLabel("Server URL").waitFor({ state: "hidden" });
    await page.waitForFunction(() => localStorage.getItem("session_id"), null, { timeout: 15_000 });
    await page.goto(`${server.url}/admin/#/servers/`);
    await page.getByRole("cell", { name: new RegExp(`:${server.port}$`) }).first().waitFor();
    await shot(page, "admin-03-servers");
  });

  step("the sockets page lists the test's /im sockets with transport and address", async () => {
    await page.goto(`${server.url}/admin/#/sockets/`);
    for (const name of ["admin", "kefu"]) await page.getByRole("cell", { name: sockets[name].id }).waitFor();
    const row = (name) => page.locator("tbody tr").filter({ hasText: sockets[name].id });
    assert.match(await row("admin").innerText(), /websocket/i);
    assert.match(await row("kefu").innerText(), /polling/i);
    assert.match(await row("kefu").innerText(), /127\.0\.0\.1/);
    await shot(page, "admin-04-sockets");
  });

  step("a socket's details show its user and a redacted Authorization header, never the token", async () => {
    await page.getByRole("cell", { name: sockets.kefu.id }).click();
    await page.getByText("Initial HTTP request").waitFor();
    const text = await page.locator("main").innerText();
    assert.match(text, /"userId": 2/);
    assert.match(text, /"username": "kefu1"/);
    assert.match(text, /authorization\s+\[redacted\]/);
    assert.ok(!text.includes(kefuToken), "the token is on the page");
    assert.ok(!text.includes(kefuToken.split(".")[2]), "the token's signature is on the page");
    await shot(page, "admin-05-socket-details");
  });

  step("disconnect one socket with the UI's button: it gets error FORBIDDEN first, then leaves the list", async () => {
    await page.locator("nav").getByText("Sockets", { exact: true }).click();
    await page.getByText("Initial HTTP request").waitFor({ state: "detached" });
    await page.getByRole("columnheader", { name: "IP address" }).waitFor();
    const row = page.locator("tbody tr").filter({ hasText: sockets.kefu.id });
    const gone = nextEvent(sockets.kefu.socket, "disconnect");
    await row.getByRole("button").click();
    assert.equal([await gone].flat()[0], "io server disconnect");
    const seen = sockets.kefu.events.map((e) => e[0]);
    assert.deepEqual(seen.slice(seen.indexOf("connected") + 1), ["error", "disconnect"]);
    const err = sockets.kefu.events.find((e) => e[0] === "error")[1];
    assert.equal(err.code, "FORBIDDEN");
    assert.match(err.message, /operator/);
    // The click also reaches the row, which opens the socket's details (as in any admin-ui
    // deployment): go back to the list, where the socket is gone once the server says so.
    await page.locator("nav").getByText("Sockets", { exact: true }).click();
    await page.getByText("Initial HTTP request").waitFor({ state: "detached" });
    await page.getByRole("cell", { name: sockets.admin.id }).waitFor();
    await within(15_000, "the row to leave the list", row.waitFor({ state: "detached" }));
    assert.equal(sockets.admin.socket.connected, true, "only that socket");
    await shot(page, "admin-06-after-disconnect");
  });

  step("nothing was requested from outside this machine, and the page threw nothing", async () => {
    assert.deepEqual(outside, []);
    assert.deepEqual(browser.pageErrors, []);
  });
});
