// Contract §3 `POST /api/publish` with `X-Api-Key`: to_users / user_type / rooms /
// broadcast reach exactly the right sockets, `delivered_to_sockets` counts the union once,
// reserved event names and a missing target are 400, missing key 401, wrong key 403.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, connectOk, closeAll, sleep, eventsOf, ADMIN, KEFU } from "./harness.mjs";

const API_KEY = "js-suite-publish-key-0123456789";

let server;
let U;
let S; // name -> {socket, rec}
const all = () => Object.values(S);

before(async () => {
  server = await startServer({ IM_SERVER__API_KEY: API_KEY }, {
    users: [
      { username: "ann", password: "ann-pass-1" },
      { username: "ben", password: "ben-pass-1" },
    ],
  });
  U = server.users;
  const tok = {
    ann: await server.loginToken(U.ann),
    ben: await server.loginToken(U.ben),
    admin: await server.loginToken(ADMIN),
    kefu: await server.loginToken(KEFU),
  };
  const c = (token, transport) => connectOk(server, { transports: [transport], auth: { token } });
  // ann: 2 sockets (user), ben: 1 polling socket (user), admin: 1, kefu1: 1 → 5 sockets.
  S = {};
  S.ann1 = await c(tok.ann, "websocket");
  S.ann2 = await c(tok.ann, "polling");
  S.ben = await c(tok.ben, "polling");
  S.admin = await c(tok.admin, "websocket");
  S.kefu = await c(tok.kefu, "websocket");
});
after(async () => {
  if (S) closeAll(all().map((s) => s.socket));
  await server?.stop();
});

const publish = (body, key = API_KEY) =>
  server.http("POST", "/api/publish", { body, headers: key === null ? {} : { "x-api-key": key } });

let seq = 0;
/**
 * Publish a fresh event and check exactly `expected` (names in S) get it once, with the data,
 * and `delivered_to_sockets` equals their number.
 */
async function expectDelivery(targets, expected) {
  const event = `app:test-${++seq}`;
  const data = { seq, note: "refresh access", nested: { list: [1, 2, 3] } };
  const r = await publish({ event, data, ...targets });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.success, true);
  assert.equal(r.body.data.delivered_to_sockets, expected.length, `delivered_to_sockets for ${JSON.stringify(targets)}`);
  for (const name of expected) {
    const ev = await S[name].rec.waitFor(event, 3000).catch((e) => {
      throw new Error(`${name} should get ${event}: ${e.message}`);
    });
    assert.deepEqual(ev.args, [data]);
  }
  await sleep(400);
  for (const [name, s] of Object.entries(S)) {
    const n = eventsOf(s.rec, event).length;
    assert.equal(n, expected.includes(name) ? 1 : 0, `${name} got ${event} ${n} times for ${JSON.stringify(targets)}`);
  }
}

describe("targets", () => {
  test("to_users: every socket of those users, nobody else", async () => {
    await expectDelivery({ to_users: [U.ann.id] }, ["ann1", "ann2"]);
    await expectDelivery({ to_users: [U.ben.id, KEFU.id] }, ["ben", "kefu"]);
  });

  test("to_users naming a user with no socket → 200, delivered_to_sockets 0", async () => {
    await expectDelivery({ to_users: [987_654] }, []);
  });

  test("user_type: every socket of that type", async () => {
    await expectDelivery({ user_type: "kefu" }, ["kefu"]);
    await expectDelivery({ user_type: "user" }, ["ann1", "ann2", "ben"]);
  });

  test("rooms: the user:<id> and type:<t> rooms the sockets joined", async () => {
    await expectDelivery({ rooms: [`user:${U.ben.id}`] }, ["ben"]);
    await expectDelivery({ rooms: ["type:admin", `user:${U.ann.id}`] }, ["admin", "ann1", "ann2"]);
    await expectDelivery({ rooms: ["no-such-room"] }, []);
  });

  test("overlapping targets: the union, each socket once, counted once", async () => {
    await expectDelivery(
      { to_users: [U.ann.id, U.ben.id], user_type: "user", rooms: [`user:${U.ann.id}`, "type:user"] },
      ["ann1", "ann2", "ben"],
    );
    await expectDelivery({ to_users: [U.ann.id], user_type: "kefu", rooms: ["type:admin"] }, [
      "ann1",
      "ann2",
      "kefu",
      "admin",
    ]);
  });

  test("broadcast: true → every socket on /im", async () => {
    await expectDelivery({ broadcast: true }, ["ann1", "ann2", "ben", "admin", "kefu"]);
  });
});

describe("refusals", () => {
  const expectError = async (r, status, code, what) => {
    assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.success, false, what);
    assert.equal(r.body.code, code, `${what}: ${JSON.stringify(r.body)}`);
    assert.equal(typeof r.body.message, "string");
    assert.ok(!r.body.message.includes(API_KEY), "the message never echoes the key");
  };

  test("reserved event names → 400 BAD_REQUEST and nothing is emitted", async () => {
    for (const event of ["error", "connected", "message"]) {
      const r = await publish({ event, data: { code: "TOKEN_REVOKED", forged: true }, broadcast: true });
      await expectError(r, 400, "BAD_REQUEST", `event ${event}`);
    }
    await sleep(400);
    for (const [name, s] of Object.entries(S)) {
      assert.deepEqual(s.rec.names().filter((n) => ["error", "message"].includes(n)), [], `${name}`);
      assert.equal(eventsOf(s.rec, "connected").length, 1, `${name} saw only its own connected`);
      assert.ok(s.socket.connected, `${name} still connected`);
    }
  });

  test("no target → 400 BAD_REQUEST", async () => {
    for (const body of [
      { event: "app:x", data: {} },
      { event: "app:x", data: {}, to_users: [], rooms: [], broadcast: false },
    ]) {
      await expectError(await publish(body), 400, "BAD_REQUEST", JSON.stringify(body));
    }
  });

  test("missing event → 400 BAD_REQUEST naming the field", async () => {
    const r = await publish({ data: {}, broadcast: true });
    await expectError(r, 400, "BAD_REQUEST", "no event");
    assert.match(r.body.message, /event/);
  });

  test("missing X-Api-Key → 401 TOKEN_MISSING; wrong key → 403 FORBIDDEN; a user's Bearer is no key", async () => {
    const body = { event: "app:nope", data: {}, broadcast: true };
    await expectError(await publish(body, null), 401, "TOKEN_MISSING", "no key");
    await expectError(await publish(body, "wrong-key"), 403, "FORBIDDEN", "wrong key");
    await expectError(await publish(body, `${API_KEY}x`), 403, "FORBIDDEN", "key with a suffix");
    const adminToken = await server.loginToken(ADMIN);
    const r = await server.http("POST", "/api/publish", { body, token: adminToken });
    await expectError(r, 401, "TOKEN_MISSING", "Bearer instead of X-Api-Key");
    await sleep(300);
    for (const [name, s] of Object.entries(S)) assert.equal(eventsOf(s.rec, "app:nope").length, 0, name);
  });
});
