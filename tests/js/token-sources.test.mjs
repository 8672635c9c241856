// Contract §4: every token source, over websocket and over long-polling, ends in
// `connected {userId, username, userType, displayName, socketId, expiresAt, serverTime}`.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, connectOk, closeAll, ADMIN, ISO_UTC } from "./harness.mjs";

let server;
let token;
let loginData;

before(async () => {
  server = await startServer();
  const r = await server.login(ADMIN);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  loginData = r.body.data;
  token = loginData.token;
});
after(async () => {
  await server?.stop();
});

const sources = [
  { name: "auth: {token}", opts: (t) => ({ auth: { token: t } }), transports: ["websocket", "polling"] },
  { name: "auth: {token: 'Bearer …'}", opts: (t) => ({ auth: { token: `Bearer ${t}` } }), transports: ["websocket", "polling"] },
  { name: "Authorization: Bearer header", opts: (t) => ({ extraHeaders: { Authorization: `Bearer ${t}` } }), transports: ["polling", "websocket"] },
  { name: "query ?token=", opts: (t) => ({ query: { token: t } }), transports: ["websocket", "polling"] },
  { name: "query ?jwt_token=", opts: (t) => ({ query: { jwt_token: t } }), transports: ["websocket", "polling"] },
  { name: "cookie token=", opts: (t) => ({ extraHeaders: { Cookie: `token=${t}` } }), transports: ["polling", "websocket"] },
];

for (const src of sources) {
  for (const transport of src.transports) {
    test(`token via ${src.name} over ${transport} → connected`, async () => {
      const before = Date.now();
      const { socket, rec, info } = await connectOk(server, { transports: [transport], ...src.opts(token) });
      try {
        assert.equal(socket.io.engine.transport.name, transport);
        assert.deepEqual(rec.names().slice(0, 2), ["connect", "connected"]);
        assert.equal(info.userId, ADMIN.id);
        assert.equal(info.username, ADMIN.username);
        assert.equal(info.userType, ADMIN.type);
        assert.equal(typeof info.displayName, "string");
        assert.ok(info.displayName.length > 0, "displayName is not empty");
        assert.equal(info.socketId, socket.id, "socketId is the client's socket.id");
        assert.match(info.expiresAt, ISO_UTC);
        assert.equal(Date.parse(info.expiresAt), Date.parse(loginData.expires_at), "expiresAt is the token's expiry");
        assert.match(info.serverTime, ISO_UTC);
        const st = Date.parse(info.serverTime);
        assert.ok(st >= before - 2000 && st <= Date.now() + 2000, `serverTime ${info.serverTime} is now`);
        assert.ok(socket.connected);
      } finally {
        closeAll(socket);
      }
    });
  }
}

test("a socket that connected with a token stays connected after `connected`", async () => {
  const { socket, rec } = await connectOk(server, { auth: { token } });
  try {
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(socket.connected);
    assert.deepEqual(rec.names(), ["connect", "connected"]);
  } finally {
    closeAll(socket);
  }
});
