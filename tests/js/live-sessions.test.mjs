// Contract §3 logout / login_policy and §4 server-initiated events on a live socket:
// TOKEN_REVOKED, SESSION_REPLACED, token_expiring + TOKEN_EXPIRED, auth:refresh.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, connectOk, closeAll, sleep, ADMIN, ISO_UTC } from "./harness.mjs";

/** Assert the socket is told `error {code}` then disconnected by the server, within ms. */
async function expectKicked(rec, code, ms) {
  const t0 = Date.now();
  const err = await rec.waitFor("error", ms);
  const disc = await rec.waitFor("disconnect", ms);
  assert.equal(err.args[0].code, code, JSON.stringify(err.args[0]));
  assert.equal(typeof err.args[0].message, "string");
  assert.equal(disc.args[0], "io server disconnect");
  assert.ok(err.at <= disc.at, "error arrives before the disconnect");
  const names = rec.names();
  assert.ok(names.indexOf("error") < names.indexOf("disconnect"), JSON.stringify(names));
  return { err, disc, elapsed: disc.at - t0 };
}

describe("default policy (multi)", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  test("logout while connected → live socket gets error TOKEN_REVOKED, then disconnect, within 1 s", async () => {
    const token = await server.loginToken(ADMIN);
    const { socket, rec } = await connectOk(server, { transports: ["websocket"], auth: { token } });
    try {
      const t0 = Date.now();
      const r = await server.logout(token);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const { disc } = await expectKicked(rec, "TOKEN_REVOKED", 1000);
      assert.ok(disc.at - t0 <= 1000, `disconnected ${disc.at - t0} ms after logout`);
      assert.equal(socket.connected, false);
    } finally {
      closeAll(socket);
    }
  });

  test("logout kicks a polling socket too", async () => {
    const token = await server.loginToken(ADMIN);
    const { socket, rec } = await connectOk(server, { transports: ["polling"], auth: { token } });
    try {
      const t0 = Date.now();
      assert.equal((await server.logout(token)).status, 200);
      const { disc } = await expectKicked(rec, "TOKEN_REVOKED", 1000);
      assert.ok(disc.at - t0 <= 1000, `disconnected ${disc.at - t0} ms after logout`);
    } finally {
      closeAll(socket);
    }
  });

  test("logout of one token leaves the user's sockets on another token connected", async () => {
    const a = await server.loginToken(ADMIN);
    const b = await server.loginToken(ADMIN);
    const sa = await connectOk(server, { auth: { token: a } });
    const sb = await connectOk(server, { auth: { token: b } });
    try {
      assert.equal((await server.logout(a)).status, 200);
      await expectKicked(sa.rec, "TOKEN_REVOKED", 1000);
      await sleep(500);
      assert.ok(sb.socket.connected);
      assert.deepEqual(sb.rec.names(), ["connect", "connected"]);
    } finally {
      closeAll(sa.socket, sb.socket);
    }
  });

  test("auth:refresh to a newer token: ack {ok:true, expiresAt}; logout A no longer kicks, logout B does", async () => {
    const a = await server.loginToken(ADMIN);
    const { socket, rec } = await connectOk(server, { auth: { token: a } });
    try {
      const loginB = await server.login(ADMIN);
      assert.equal(loginB.status, 200);
      const b = loginB.body.data.token;
      const ack = await socket.timeout(5000).emitWithAck("auth:refresh", { token: b });
      assert.equal(ack.ok, true, JSON.stringify(ack));
      assert.match(ack.expiresAt, ISO_UTC);
      assert.equal(Date.parse(ack.expiresAt), Date.parse(loginB.body.data.expires_at));

      assert.equal((await server.logout(a)).status, 200);
      await sleep(1000);
      assert.ok(socket.connected, "logout of the old token does not disconnect a refreshed socket");
      assert.deepEqual(rec.names(), ["connect", "connected"], JSON.stringify(rec.events));

      const t0 = Date.now();
      assert.equal((await server.logout(b)).status, 200);
      const { disc } = await expectKicked(rec, "TOKEN_REVOKED", 1000);
      assert.ok(disc.at - t0 <= 1000);
    } finally {
      closeAll(socket);
    }
  });

  test("auth:refresh with garbage → {ok:false, code:TOKEN_MALFORMED}; the socket stays connected on its old token", async () => {
    const a = await server.loginToken(ADMIN);
    const { socket, rec } = await connectOk(server, { auth: { token: a } });
    try {
      const ack = await socket.timeout(5000).emitWithAck("auth:refresh", { token: "garbage" });
      assert.equal(ack.ok, false, JSON.stringify(ack));
      assert.equal(ack.code, "TOKEN_MALFORMED");
      assert.equal(typeof ack.message, "string");
      await sleep(300);
      assert.ok(socket.connected);
      assert.deepEqual(rec.names(), ["connect", "connected"]);
      // It kept the old token: logging that one out still kicks it.
      assert.equal((await server.logout(a)).status, 200);
      await expectKicked(rec, "TOKEN_REVOKED", 1000);
    } finally {
      closeAll(socket);
    }
  });
});

describe("login_policy = kick_previous", () => {
  let server;
  before(async () => {
    server = await startServer({ IM_AUTH__LOGIN_POLICY: "kick_previous" });
  });
  after(async () => {
    await server?.stop();
  });

  test("a second login of the same user → the first socket gets error SESSION_REPLACED, then disconnect", async () => {
    const a = await server.loginToken(ADMIN);
    const first = await connectOk(server, { transports: ["websocket"], auth: { token: a } });
    let second;
    try {
      const b = await server.loginToken(ADMIN);
      await expectKicked(first.rec, "SESSION_REPLACED", 2000);
      second = await connectOk(server, { auth: { token: b } });
      assert.equal(second.info.userId, ADMIN.id);
    } finally {
      closeAll(first.socket, second?.socket);
    }
  });
});

describe("login_policy = reject_new", () => {
  let server;
  before(async () => {
    server = await startServer({ IM_AUTH__LOGIN_POLICY: "reject_new" });
  });
  after(async () => {
    await server?.stop();
  });

  test("a second login of the same user → HTTP 409 ALREADY_LOGGED_IN; the first session is untouched", async () => {
    const a = await server.loginToken(ADMIN);
    const { socket, rec } = await connectOk(server, { auth: { token: a } });
    try {
      const r = await server.login(ADMIN);
      assert.equal(r.status, 409, JSON.stringify(r.body));
      assert.equal(r.body.success, false);
      assert.equal(r.body.code, "ALREADY_LOGGED_IN");
      assert.equal(typeof r.body.message, "string");
      await sleep(300);
      assert.ok(socket.connected);
      assert.deepEqual(rec.names(), ["connect", "connected"]);
      // After logging out, the user can log in again.
      assert.equal((await server.logout(a)).status, 200);
      const again = await server.login(ADMIN);
      assert.equal(again.status, 200, JSON.stringify(again.body));
    } finally {
      closeAll(socket);
    }
  });
});

describe("token expiry while connected (ttl 4 s, warning 2 s, leeway 0)", () => {
  let server;
  before(async () => {
    server = await startServer({
      IM_AUTH__TOKEN_TTL_SECS: "4",
      IM_AUTH__EXPIRY_WARNING_SECS: "2",
      IM_AUTH__LEEWAY_SECS: "0",
    });
  });
  after(async () => {
    await server?.stop();
  });

  test("token_expiring {expiresAt, secondsLeft}, then error TOKEN_EXPIRED, then disconnect", async () => {
    const token = await server.loginToken(ADMIN);
    const { socket, rec, info } = await connectOk(server, { auth: { token } });
    try {
      const exp = Date.parse(info.expiresAt);
      const warn = await rec.waitFor("token_expiring", 5000);
      const w = warn.args[0];
      assert.equal(w.expiresAt, info.expiresAt, JSON.stringify(w));
      assert.equal(typeof w.secondsLeft, "number");
      assert.ok(w.secondsLeft > 0 && w.secondsLeft <= 2, `secondsLeft=${w.secondsLeft}`);
      assert.ok(warn.at < exp, "the warning comes before expiry");
      assert.ok(warn.at >= exp - 3000, `warning ${exp - warn.at} ms before expiry (expected about 2 s)`);

      const { err } = await expectKicked(rec, "TOKEN_EXPIRED", 5000);
      assert.ok(err.at >= exp - 500, `expired event ${exp - err.at} ms before expiresAt`);
      assert.ok(err.at <= exp + 2000, `expired event ${err.at - exp} ms after expiresAt`);
      assert.deepEqual(rec.names(), ["connect", "connected", "token_expiring", "error", "disconnect"]);
    } finally {
      closeAll(socket);
    }
  });
});
