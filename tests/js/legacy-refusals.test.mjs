// Contract §4, failure_mode = legacy (the default): a refused handshake gives the client
// `connect`, then `error {code, message}`, then `disconnect("io server disconnect")`,
// and no other event.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, connectRefusedLegacy, forgedTokens, ADMIN } from "./harness.mjs";

let server;
let tokens;

before(async () => {
  server = await startServer();
  const real = await server.loginToken(ADMIN);
  tokens = forgedTokens(real);
  tokens.revoked = await server.loginToken(ADMIN);
  const r = await server.logout(tokens.revoked);
  assert.equal(r.status, 200, `logout: ${JSON.stringify(r.body)}`);
});
after(async () => {
  await server?.stop();
});

const cases = [
  { code: "TOKEN_MISSING", opts: () => ({}) },
  { code: "TOKEN_MALFORMED", opts: () => ({ auth: { token: tokens.garbage } }) },
  { code: "TOKEN_INVALID_SIGNATURE", opts: () => ({ auth: { token: tokens.otherSecret } }) },
  { code: "TOKEN_ALGORITHM_NOT_ALLOWED", opts: () => ({ auth: { token: tokens.algNone } }) },
  { code: "TOKEN_EXPIRED", opts: () => ({ auth: { token: tokens.expired } }) },
  { code: "TOKEN_NOT_FOUND", opts: () => ({ auth: { token: tokens.notFound } }) },
  { code: "TOKEN_REVOKED", opts: () => ({ auth: { token: tokens.revoked } }) },
];

function assertLegacyRefusal(rec, code) {
  const names = rec.names();
  assert.deepEqual(names, ["connect", "error", "disconnect"], `event sequence: ${JSON.stringify(rec.events)}`);
  const err = rec.events[1].args[0];
  assert.equal(typeof err, "object");
  assert.equal(err.code, code);
  assert.equal(typeof err.message, "string");
  assert.ok(err.message.length > 0, "error.message is a sentence");
  assert.equal(rec.events[2].args[0], "io server disconnect");
}

for (const transport of ["websocket", "polling"]) {
  for (const c of cases) {
    test(`legacy over ${transport}: ${c.code} → connect, error {code}, disconnect`, async () => {
      const { socket, rec } = await connectRefusedLegacy(server, { transports: [transport], ...c.opts() });
      assertLegacyRefusal(rec, c.code);
      assert.equal(socket.connected, false);
      assert.equal(socket.active, false, "a server disconnect does not auto-reconnect");
    });
  }
}

test("legacy: the error message never contains the token", async () => {
  const { rec } = await connectRefusedLegacy(server, { auth: { token: tokens.otherSecret } });
  const err = rec.events.find((e) => e.name === "error")?.args[0];
  assert.ok(err, "got an error event");
  const sig = tokens.otherSecret.split(".")[2];
  assert.ok(!err.message.includes(sig) && !err.message.includes(tokens.otherSecret));
});
