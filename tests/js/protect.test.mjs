// Contract §11 with the real socket.io-client 4.x: limits refuse in the handshake's failure
// mode, an event over the socket's rate gets RATE_LIMITED and the socket stays; a password
// typed into the username field never reaches the log.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, connectOk, connectRefusedLegacy, closeAll, eventually, sleep, stripAnsi, ADMIN } from "./harness.mjs";

let server;
let token;

before(async () => {
  server = await startServer({
    IM_LIMITS__MAX_CONNECTIONS_PER_USER: "1",
    IM_LIMITS__EVENTS_PER_SOCKET_PER_SECOND: "3",
  });
  token = await server.loginToken(ADMIN);
});
after(async () => {
  await server?.stop();
});

test("a second socket of a user over max_connections_per_user gets error CONNECTION_LIMIT, then a server disconnect", async () => {
  const first = await connectOk(server, { auth: { token } });
  try {
    const { rec } = await connectRefusedLegacy(server, { auth: { token } });
    assert.deepEqual(rec.names(), ["connect", "error", "disconnect"]);
    assert.equal(rec.events[1].args[0].code, "CONNECTION_LIMIT");
    assert.equal(rec.events[2].args[0], "io server disconnect", "no auto-reconnect");
    assert.ok(first.socket.connected, "the first socket is untouched");
  } finally {
    closeAll(first.socket);
  }
});

test("events over events_per_socket_per_second are acked RATE_LIMITED and the socket stays", async () => {
  // The previous test's socket gives its place back when the server has seen it close.
  const { socket } = await eventually(
    () => connectOk(server, { auth: { token } }, { ms: 1000 }).catch(() => null),
    10_000,
    "the user's place to be free again",
  );
  try {
    const acks = await Promise.all(
      Array.from({ length: 12 }, () => socket.timeout(5000).emitWithAck("presence:subscribe", { userIds: [2] })),
    );
    const limited = acks.filter((a) => a.code === "RATE_LIMITED");
    assert.ok(limited.length > 0 && limited.length < 12, JSON.stringify(acks));
    assert.ok(acks.every((a) => a.ok === true || a.code === "RATE_LIMITED"), JSON.stringify(acks));
    assert.equal(limited[0].ok, false);
    assert.ok(socket.connected);
  } finally {
    closeAll(socket);
  }
});

test("a password typed into the username field is logged as a fingerprint", async () => {
  const typed = "Hunter2-typed-in-the-wrong-field";
  const r = await server.login({ username: typed, password: "x" });
  assert.equal(r.status, 401);
  await sleep(300); // let the log line reach the pipe
  const logs = stripAnsi(server.stdout + server.stderr);
  assert.ok(!logs.includes(typed), "the typed value is in the logs");
  const line = logs.split("\n").find((l) => l.includes("login failed"));
  assert.match(line, /unknown:sha256:[0-9a-f]{12}/, line);
});
