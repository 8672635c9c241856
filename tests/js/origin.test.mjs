// Contract §2 `cors.origins` applies to the WebSocket `Origin` header as well as to HTTP:
// with FRONTEND_URL set, a websocket from another origin is refused with ORIGIN_DENIED.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, connectOk, connectRefusedLegacy, closeAll, ADMIN } from "./harness.mjs";

let server;
let token;

before(async () => {
  server = await startServer({ FRONTEND_URL: "http://allowed.example", NODE_ENV: undefined, IM_PROFILE: undefined });
  token = await server.loginToken(ADMIN);
});
after(async () => {
  await server?.stop();
});

test("websocket from a foreign Origin → error ORIGIN_DENIED, then server disconnect", async () => {
  const { rec } = await connectRefusedLegacy(server, {
    transports: ["websocket"],
    auth: { token },
    extraHeaders: { Origin: "http://evil.example" },
  });
  assert.deepEqual(rec.names(), ["connect", "error", "disconnect"], JSON.stringify(rec.events));
  assert.equal(rec.events[1].args[0].code, "ORIGIN_DENIED");
  assert.equal(typeof rec.events[1].args[0].message, "string");
  assert.equal(rec.events[2].args[0], "io server disconnect");
});

test("websocket from the allowed Origin → connected", async () => {
  const { socket, info } = await connectOk(server, {
    transports: ["websocket"],
    auth: { token },
    extraHeaders: { Origin: "http://allowed.example" },
  });
  try {
    assert.equal(info.userId, ADMIN.id);
    assert.equal(info.socketId, socket.id);
  } finally {
    closeAll(socket);
  }
});
