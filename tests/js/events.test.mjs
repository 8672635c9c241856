// Contract §4: a malformed or unknown event gets an ack {ok:false, code:"BAD_REQUEST"} when
// an ack was asked for, and never closes the socket.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, connectOk, closeAll, sleep, ADMIN } from "./harness.mjs";

let server;
let token;

before(async () => {
  server = await startServer();
  token = await server.loginToken(ADMIN);
});
after(async () => {
  await server?.stop();
});

for (const transport of ["websocket", "polling"]) {
  test(`unknown event with ack over ${transport} → {ok:false, code:BAD_REQUEST}; socket stays connected`, async () => {
    const { socket, rec } = await connectOk(server, { transports: [transport], auth: { token } });
    try {
      const ack = await socket.timeout(5000).emitWithAck("no_such_event", { hello: "world" });
      assert.equal(ack.ok, false, JSON.stringify(ack));
      assert.equal(ack.code, "BAD_REQUEST");
      await sleep(300);
      assert.ok(socket.connected);
      // The socket still works: a second request still gets its ack.
      const again = await socket.timeout(5000).emitWithAck("another_unknown_event");
      assert.equal(again.code, "BAD_REQUEST");
      assert.deepEqual(rec.names(), ["connect", "connected"]);
    } finally {
      closeAll(socket);
    }
  });
}

test("unknown event without ack → ignored, socket stays connected", async () => {
  const { socket, rec } = await connectOk(server, { auth: { token } });
  try {
    socket.emit("no_such_event", 1, 2, 3);
    socket.emit("no_such_event_either");
    await sleep(500);
    assert.ok(socket.connected);
    assert.deepEqual(rec.names(), ["connect", "connected"]);
    const ack = await socket.timeout(5000).emitWithAck("still_unknown");
    assert.equal(ack.code, "BAD_REQUEST");
  } finally {
    closeAll(socket);
  }
});

for (const [label, args] of [
  ["no payload", []],
  ["a string payload", ["just a string"]],
  ["an object without token", [{}]],
  ["a numeric token", [{ token: 42 }]],
]) {
  test(`malformed auth:refresh (${label}) → {ok:false, code:BAD_REQUEST}; socket stays connected`, async () => {
    const { socket, rec } = await connectOk(server, { auth: { token } });
    try {
      const ack = await socket.timeout(5000).emitWithAck("auth:refresh", ...args);
      assert.equal(ack.ok, false, JSON.stringify(ack));
      assert.equal(ack.code, "BAD_REQUEST");
      await sleep(200);
      assert.ok(socket.connected);
      assert.deepEqual(rec.names(), ["connect", "connected"]);
    } finally {
      closeAll(socket);
    }
  });
}

test("the server keeps serving other clients after malformed traffic", async () => {
  const { socket } = await connectOk(server, { auth: { token } });
  try {
    for (let i = 0; i < 20; i++) socket.emit(`junk_${i}`, { i });
    const health = await server.http("GET", "/health");
    assert.equal(health.status, 200);
    const other = await connectOk(server, { auth: { token } });
    closeAll(other.socket);
  } finally {
    closeAll(socket);
  }
});
