// Contract §4 `presence:subscribe` / `presence:unsubscribe` / `presence` events, §3
// `GET /auth/online` and `GET /auth/session` (sockets with their transport).

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startServer,
  connectOk,
  connectV4,
  record,
  closeAll,
  sleep,
  eventsOf,
  expectNothingMore,
  eventually,
  KEFU,
  ISO_UTC,
} from "./harness.mjs";

const USERS = [
  { username: "pam", password: "pam-pass-1" }, // watched, goes on and off line
  { username: "quinn", password: "quinn-pass-1" }, // watched, online before the subscribe
  { username: "otto", password: "otto-pass-1" }, // /auth/online
  { username: "kefu9", password: "kefu9-pass-1", type: "kefu", displayName: "Agent Nine" },
  { username: "sam", password: "sam-pass-1" }, // /auth/session
];

let server;
let U;
const tokens = {};

before(async () => {
  server = await startServer({}, { users: USERS });
  U = server.users;
  for (const u of Object.values(U)) tokens[u.username] = await server.loginToken(u);
});
after(async () => {
  await server?.stop();
});

const connect = (name, transport = "websocket", token = tokens[name]) =>
  connectOk(server, { transports: [transport], auth: { token } });

describe("presence", () => {
  test("subscribe ack lists who is online; first socket → online:true, second → nothing, last gone → online:false; unsubscribe stops it", async () => {
    const open = [];
    try {
      const watcher = await connect("admin");
      open.push(watcher.socket);
      const bystander = await connect("kefu1"); // never subscribes: must see no presence
      open.push(bystander.socket);
      const q1 = await connect("quinn");
      open.push(q1.socket);

      const sub = await watcher.socket
        .timeout(5000)
        .emitWithAck("presence:subscribe", { userIds: [U.pam.id, U.quinn.id, 987_654] });
      assert.equal(sub.ok, true, JSON.stringify(sub));
      assert.deepEqual(sub.online, [U.quinn.id], `only quinn is online now: ${JSON.stringify(sub)}`);

      // pam's first socket: online:true with a timestamp.
      const t0 = Date.now();
      const p1 = await connect("pam");
      open.push(p1.socket);
      const on = await watcher.rec.waitFor("presence", 3000, (p) => p.userId === U.pam.id);
      assert.equal(on.args[0].online, true, JSON.stringify(on.args[0]));
      assert.match(on.args[0].at, ISO_UTC);
      assert.ok(Math.abs(Date.parse(on.args[0].at) - t0) < 10_000, `at ${on.args[0].at} is now`);
      assert.deepEqual(Object.keys(on.args[0]).sort(), ["at", "online", "userId"]);

      // pam's second socket (other transport): no presence event.
      const p2 = await connect("pam", "polling");
      open.push(p2.socket);
      await expectNothingMore(watcher.rec, "presence", 600, (p) => p.userId === U.pam.id);
      assert.equal(eventsOf(watcher.rec, "presence", (p) => p.userId === U.pam.id).length, 1);

      // A new subscriber now sees pam in its ack.
      const sub2 = await bystander.socket.timeout(5000).emitWithAck("presence:subscribe", { userIds: [U.pam.id] });
      assert.deepEqual(sub2, { ok: true, online: [U.pam.id] });
      await bystander.socket.timeout(5000).emitWithAck("presence:unsubscribe", { userIds: [U.pam.id] });

      // The first socket leaves while the second stays: still online, no event.
      closeAll(p1.socket);
      await expectNothingMore(watcher.rec, "presence", 600, (p) => p.userId === U.pam.id);
      assert.equal(eventsOf(watcher.rec, "presence", (p) => p.userId === U.pam.id).length, 1);

      // The last socket leaves: online:false.
      closeAll(p2.socket);
      const off = await watcher.rec.waitFor("presence", 3000, (p) => p.userId === U.pam.id && p.online === false);
      assert.match(off.args[0].at, ISO_UTC);
      assert.ok(Date.parse(off.args[0].at) >= Date.parse(on.args[0].at), "offline after online");
      assert.deepEqual(
        eventsOf(watcher.rec, "presence", (p) => p.userId === U.pam.id).map((e) => e.args[0].online),
        [true, false],
      );

      // Unsubscribe from pam: her next connect/disconnect is silent; quinn still reports.
      const unsub = await watcher.socket.timeout(5000).emitWithAck("presence:unsubscribe", { userIds: [U.pam.id] });
      assert.equal(unsub.ok, true, JSON.stringify(unsub));
      const p3 = await connect("pam");
      open.push(p3.socket);
      closeAll(p3.socket);
      await expectNothingMore(watcher.rec, "presence", 800, (p) => p.userId === U.pam.id);
      assert.equal(eventsOf(watcher.rec, "presence", (p) => p.userId === U.pam.id).length, 2);

      closeAll(q1.socket);
      const qOff = await watcher.rec.waitFor("presence", 3000, (p) => p.userId === U.quinn.id);
      assert.equal(qOff.args[0].online, false);

      // The socket that unsubscribed right after its subscribe ack got no presence event.
      await expectNothingMore(bystander.rec, "presence", 200);
      assert.deepEqual(eventsOf(bystander.rec, "presence").map((e) => e.args[0]), []);
      assert.ok(watcher.socket.connected && bystander.socket.connected);
    } finally {
      closeAll(open);
    }
  });

  test("malformed presence:subscribe / unsubscribe → ack BAD_REQUEST; socket stays", async () => {
    const s = await connect("admin");
    try {
      for (const payload of [null, "x", {}, { userIds: "1" }, { userIds: [{}] }]) {
        for (const ev of ["presence:subscribe", "presence:unsubscribe"]) {
          const ack = await s.socket.timeout(5000).emitWithAck(ev, payload);
          assert.equal(ack.ok, false, `${ev} ${JSON.stringify(payload)} → ${JSON.stringify(ack)}`);
          assert.equal(ack.code, "BAD_REQUEST");
          assert.equal(typeof ack.message, "string");
        }
      }
      assert.ok(s.socket.connected);
      assert.deepEqual(s.rec.names(), ["connect", "connected"]);
    } finally {
      closeAll(s.socket);
    }
  });
});

describe("GET /auth/online", () => {
  const online = async (query = "") => {
    const r = await server.http("GET", `/auth/online${query}`, { token: tokens.admin });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.success, true);
    assert.ok(Array.isArray(r.body.data.users), JSON.stringify(r.body));
    return r.body.data.users;
  };

  test("lists online users with socket counts and since; ?user_type=kefu filters", async () => {
    const open = [];
    try {
      const t0 = Date.now();
      const o1 = await connect("otto");
      open.push(o1.socket);
      const o2 = await connect("otto", "polling");
      open.push(o2.socket);
      const k1 = await connect("kefu9");
      open.push(k1.socket);
      const k2 = await connect("kefu1");
      open.push(k2.socket);

      const users = await online();
      const otto = users.find((u) => u.id === U.otto.id);
      assert.ok(otto, `otto online: ${JSON.stringify(users)}`);
      assert.equal(otto.username, "otto");
      assert.equal(otto.user_type, "user");
      assert.ok("display_name" in otto);
      assert.equal(otto.sockets, 2);
      assert.match(otto.since, ISO_UTC);
      assert.ok(Math.abs(Date.parse(otto.since) - t0) < 10_000, `since ${otto.since}`);
      const k9 = users.find((u) => u.id === U.kefu9.id);
      assert.deepEqual(
        { username: k9?.username, user_type: k9?.user_type, display_name: k9?.display_name, sockets: k9?.sockets },
        { username: "kefu9", user_type: "kefu", display_name: "Agent Nine", sockets: 1 },
      );
      assert.equal(users.find((u) => u.id === KEFU.id)?.sockets, 1);
      assert.equal(users.find((u) => u.id === U.sam.id), undefined, "sam has no socket");
      assert.equal(users.find((u) => u.id === U.pam.id), undefined, "pam has no socket");
      // Ids are unique.
      assert.equal(new Set(users.map((u) => u.id)).size, users.length);

      const kefus = await online("?user_type=kefu");
      assert.deepEqual(kefus.map((u) => u.id).sort((a, b) => a - b), [KEFU.id, U.kefu9.id]);
      assert.ok(kefus.every((u) => u.user_type === "kefu"));
      assert.deepEqual(await online("?user_type=nosuchtype"), []);

      // since is when the user came online: a later socket does not move it.
      const o3 = await connect("otto");
      open.push(o3.socket);
      const again = (await online()).find((u) => u.id === U.otto.id);
      assert.equal(again.sockets, 3);
      assert.equal(again.since, otto.since);

      // Sockets leaving lower the count; the last one removes the user.
      closeAll(o1.socket, o3.socket);
      await eventually(async () => (await online()).find((u) => u.id === U.otto.id)?.sockets === 1, 3000, "otto at 1 socket");
      closeAll(o2.socket, k1.socket);
      await eventually(async () => {
        const us = await online();
        return !us.some((u) => u.id === U.otto.id || u.id === U.kefu9.id);
      }, 3000, "otto and kefu9 offline");
      assert.deepEqual((await online("?user_type=kefu")).map((u) => u.id), [KEFU.id]);
    } finally {
      closeAll(open);
    }
  });

  test("without a token → 401 TOKEN_MISSING", async () => {
    const r = await server.http("GET", "/auth/online");
    assert.equal(r.status, 401);
    assert.equal(r.body.code, "TOKEN_MISSING");
  });
});

describe("GET /auth/session", () => {
  test("lists this token's sockets with transport websocket / polling, not other tokens' sockets", async () => {
    const token = await server.loginToken(U.sam);
    const other = await server.loginToken(U.sam);
    const open = [];
    try {
      const empty = await server.http("GET", "/auth/session", { token });
      assert.equal(empty.status, 200, JSON.stringify(empty.body));
      assert.deepEqual(empty.body.data.sockets, []);
      assert.equal(empty.body.data.online, false);

      const ws = await connectOk(server, {
        transports: ["websocket"],
        auth: { token },
        extraHeaders: { "user-agent": "js-suite-ws/1.0" },
      });
      open.push(ws.socket);
      const poll = await connectOk(server, {
        transports: ["polling"],
        auth: { token },
        extraHeaders: { "user-agent": "js-suite-polling/1.0" },
      });
      open.push(poll.socket);
      const elsewhere = await connectOk(server, { transports: ["websocket"], auth: { token: other } });
      open.push(elsewhere.socket);

      const r = await server.http("GET", "/auth/session", { token });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const d = r.body.data;
      assert.equal(d.user.id, U.sam.id);
      assert.equal(d.user.username, "sam");
      assert.match(d.token.expires_at, ISO_UTC);
      assert.match(d.token.issued_at, ISO_UTC);
      assert.ok("id" in d.token && "last_used_at" in d.token, JSON.stringify(d.token));
      assert.equal(d.online, true);
      assert.equal(d.sockets.length, 2, JSON.stringify(d.sockets));
      const byId = Object.fromEntries(d.sockets.map((s) => [s.id, s]));
      assert.deepEqual(Object.keys(byId).sort(), [ws.socket.id, poll.socket.id].sort(), "socket ids as the client sees them");
      assert.equal(ws.info.socketId, ws.socket.id);
      assert.equal(byId[ws.socket.id].transport, "websocket");
      assert.equal(byId[poll.socket.id].transport, "polling");
      assert.equal(byId[ws.socket.id].user_agent, "js-suite-ws/1.0");
      assert.equal(byId[poll.socket.id].user_agent, "js-suite-polling/1.0");
      for (const s of d.sockets) {
        assert.match(s.connected_at, ISO_UTC);
        assert.equal(typeof s.ip, "string");
        assert.match(s.ip, /127\.0\.0\.1/);
      }

      // The same view through the cookie.
      const viaCookie = await server.http("GET", "/auth/session", { headers: { cookie: `token=${token}` } });
      assert.equal(viaCookie.status, 200, JSON.stringify(viaCookie.body));
      assert.deepEqual(viaCookie.body.data.sockets.map((s) => s.id).sort(), Object.keys(byId).sort());

      // The other token sees only its own socket.
      const o = await server.http("GET", "/auth/session", { token: other });
      assert.deepEqual(o.body.data.sockets.map((s) => [s.id, s.transport]), [[elsewhere.socket.id, "websocket"]]);

      // Closing them empties the list.
      closeAll(ws.socket, poll.socket);
      await eventually(async () => {
        const x = await server.http("GET", "/auth/session", { token });
        return x.body.data.sockets.length === 0 && x.body.data.online === false;
      }, 3000, "session sockets to empty after close");
    } finally {
      closeAll(open);
    }
  });

  test("a socket that started on polling and upgraded is listed with transport websocket", async () => {
    const token = await server.loginToken(U.sam);
    // Default client (polling, then upgrade), with the upgrade probe held back until the
    // socket is authenticated, so the server surely sees it connect on polling first.
    const socket = connectV4(server, { auth: { token }, autoConnect: false });
    const rec = record(socket);
    try {
      socket.connect();
      const engine = socket.io.engine;
      const probe = engine._probe.bind(engine);
      const held = [];
      engine._probe = (name) => held.push(name);
      await rec.waitFor("connected", 5000);
      await eventually(() => held.length > 0, 3000, "the client to want an upgrade");

      const before = await server.http("GET", "/auth/session", { token });
      assert.deepEqual(before.body.data.sockets.map((x) => [x.id, x.transport]), [[socket.id, "polling"]]);

      engine._probe = probe;
      for (const name of held) probe(name);
      await eventually(() => engine.transport.name === "websocket", 5000, "the client to finish its upgrade");
      await sleep(200);
      assert.ok(socket.connected);
      const after = await server.http("GET", "/auth/session", { token });
      assert.equal(after.status, 200, JSON.stringify(after.body));
      assert.deepEqual(
        after.body.data.sockets.map((x) => [x.id, x.transport]),
        [[socket.id, "websocket"]],
        "the client is on websocket now; /auth/session should say so",
      );
    } finally {
      closeAll(socket);
    }
  });

  test("without a token → 401 TOKEN_MISSING", async () => {
    const r = await server.http("GET", "/auth/session");
    assert.equal(r.status, 401);
    assert.equal(r.body.success, false);
    assert.equal(r.body.code, "TOKEN_MISSING");
  });
});
