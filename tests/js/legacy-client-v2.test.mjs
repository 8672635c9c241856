// Contract §4: socket.io-client 2.x (Engine.IO v3) apps keep working with the token in a
// header or cookie (DEPS.md: never in `query` for a non-root namespace with 2.x).

import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { startServer, connectOk, connectRefusedLegacy, connectV2, record, closeAll, sleep, forgedTokens, ioV2, ADMIN } from "./harness.mjs";

test("the alias really is socket.io-client 2.x", async () => {
  const { createRequire } = await import("node:module");
  const pkg = createRequire(import.meta.url)("socket.io-client-v2/package.json");
  assert.match(pkg.version, /^2\./);
  assert.equal(typeof ioV2, "function");
});

describe("legacy mode (default)", () => {
  let server;
  let token;
  let tokens;
  before(async () => {
    server = await startServer();
    token = await server.loginToken(ADMIN);
    tokens = forgedTokens(token);
  });
  after(async () => {
    await server?.stop();
  });

  const good = [
    { name: "Authorization: Bearer header over polling", opts: (t) => ({ transports: ["polling"], extraHeaders: { Authorization: `Bearer ${t}` } }) },
    { name: "Cookie header over polling", opts: (t) => ({ transports: ["polling"], extraHeaders: { Cookie: `token=${t}` } }) },
    { name: "Authorization: Bearer header over websocket", opts: (t) => ({ transports: ["websocket"], extraHeaders: { Authorization: `Bearer ${t}` } }) },
    { name: "Authorization header, polling then upgrade", opts: (t) => ({ extraHeaders: { Authorization: `Bearer ${t}` } }) },
  ];
  for (const g of good) {
    test(`2.x client, token via ${g.name} → connected`, async () => {
      const { socket, rec, info } = await connectOk(server, g.opts(token), { v2: true });
      try {
        assert.deepEqual(rec.names(), ["connect", "connected"]);
        assert.equal(info.userId, ADMIN.id);
        assert.equal(info.username, ADMIN.username);
        assert.equal(info.userType, ADMIN.type);
        assert.equal(typeof info.displayName, "string");
        assert.match(socket.id, /^\/im#/, "2.x ids are <nsp>#<sid>");
        assert.equal(info.socketId, socket.id.replace(/^\/im#/, ""));
        assert.ok(info.expiresAt && info.serverTime);
        await sleep(300);
        assert.ok(socket.connected);
      } finally {
        closeAll(socket);
      }
    });
  }

  for (const [label, opts, code] of [
    ["no token", () => ({ transports: ["polling"] }), "TOKEN_MISSING"],
    ["a garbage token in the header", () => ({ transports: ["polling"], extraHeaders: { Authorization: `Bearer ${tokens.garbage}` } }), "TOKEN_MALFORMED"],
    ["a token signed with another secret (cookie)", () => ({ transports: ["polling"], extraHeaders: { Cookie: `token=${tokens.otherSecret}` } }), "TOKEN_INVALID_SIGNATURE"],
    ["an expired token over websocket", () => ({ transports: ["websocket"], extraHeaders: { Authorization: `Bearer ${tokens.expired}` } }), "TOKEN_EXPIRED"],
  ]) {
    test(`2.x client with ${label} → connect, error {code:${code}}, disconnect`, async () => {
      const { rec } = await connectRefusedLegacy(server, opts(), { v2: true });
      assert.deepEqual(rec.names(), ["connect", "error", "disconnect"], JSON.stringify(rec.events));
      const err = rec.events[1].args[0];
      assert.equal(err.code, code);
      assert.equal(typeof err.message, "string");
      assert.equal(rec.events[2].args[0], "io server disconnect");
    });
  }

  test("2.x client: logout while connected → error TOKEN_REVOKED, then disconnect", async () => {
    const t = await server.loginToken(ADMIN);
    const { socket, rec } = await connectOk(server, { transports: ["polling"], extraHeaders: { Authorization: `Bearer ${t}` } }, { v2: true });
    try {
      assert.equal((await server.logout(t)).status, 200);
      const err = await rec.waitFor("error", 2000);
      assert.equal(err.args[0].code, "TOKEN_REVOKED");
      const disc = await rec.waitFor("disconnect", 2000);
      assert.equal(disc.args[0], "io server disconnect");
    } finally {
      closeAll(socket);
    }
  });
});

describe("strict mode", () => {
  let server;
  before(async () => {
    server = await startServer({ IM_AUTH__FAILURE_MODE: "strict" });
  });
  after(async () => {
    await server?.stop();
  });

  test("2.x client with no token → `error` naming TOKEN_MISSING, never `connect`", async () => {
    const socket = connectV2(server, { transports: ["polling"] });
    const rec = record(socket);
    try {
      const ev = await rec.waitFor("error", 5000);
      await sleep(300);
      const p = ev.args[0];
      const code = typeof p === "string" ? p : p?.code ?? p?.message;
      assert.equal(code, "TOKEN_MISSING", JSON.stringify(p));
      assert.ok(!rec.names().includes("connect"), JSON.stringify(rec.names()));
      assert.equal(socket.connected, false);
    } finally {
      closeAll(socket);
    }
  });
});
