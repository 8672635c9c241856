// Contract §4, failure_mode = strict: the connect middleware rejects, the client gets
// `connect_error` whose `message` is exactly the code, and never a `connect`.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, connectV4, record, sleep, closeAll, forgedTokens, ADMIN } from "./harness.mjs";

let server;
let tokens;
let good;

before(async () => {
  server = await startServer({ IM_AUTH__FAILURE_MODE: "strict" });
  good = await server.loginToken(ADMIN);
  tokens = forgedTokens(good);
  tokens.revoked = await server.loginToken(ADMIN);
  const r = await server.logout(tokens.revoked);
  assert.equal(r.status, 200);
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

for (const transport of ["websocket", "polling"]) {
  for (const c of cases) {
    test(`strict over ${transport}: ${c.code} → connect_error with message "${c.code}"`, async () => {
      const socket = connectV4(server, { transports: [transport], ...c.opts() });
      const rec = record(socket);
      try {
        const ev = await rec.waitFor("connect_error");
        await sleep(300);
        const err = ev.args[0];
        assert.ok(err instanceof Error);
        assert.equal(err.message, c.code);
        if (err.data !== undefined) assert.equal(err.data.code, c.code);
        assert.deepEqual(rec.names(), ["connect_error"], `no connect/error/disconnect: ${JSON.stringify(rec.names())}`);
        assert.equal(socket.connected, false);
      } finally {
        closeAll(socket);
      }
    });
  }
}

test("strict: a valid token still connects", async () => {
  const socket = connectV4(server, { auth: { token: good } });
  const rec = record(socket);
  try {
    const ev = await rec.waitFor("connected");
    assert.equal(ev.args[0].userId, ADMIN.id);
    assert.deepEqual(rec.names(), ["connect", "connected"]);
  } finally {
    closeAll(socket);
  }
});
