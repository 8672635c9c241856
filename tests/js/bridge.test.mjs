// Contract §10, the bridge: client events not built in go to the app's backend (a real
// node:http process-local server that verifies EVERY signature), and its answer is carried
// out: ack, emit (rooms / users / the sender), join / leave, disconnect; each failure mode gets
// its code and leaves the socket connected; one socket's calls are ordered and bounded,
// different sockets' run concurrently; on_connect / on_disconnect; metrics and the log line.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startServer, connectOk, connectV2, record, closeAll, sleep, eventually, eventsOf,
  expectNothingMore, connectRefusedLegacy, stripAnsi, free, connectV4, once, ADMIN,
} from "./harness.mjs";
import { startBackend } from "./bridge-backend.mjs";

const SECRET = "bridge-test-secret-0123456789abcdef";
const MARKER = "PAYLOAD-MARKER-never-in-logs";

let backend, server, U, tok;

const bridgeEnv = (url, extra = {}) => ({
  IM_BRIDGE__URL: url,
  IM_BRIDGE__SECRET: SECRET,
  IM_BRIDGE__TIMEOUT_MS: "1500",
  IM_BRIDGE__QUEUE_PER_SOCKET: "3",
  IM_BRIDGE__ON_DISCONNECT: "true",
  ...extra,
});

before(async () => {
  backend = await startBackend({ secret: SECRET });
  server = await startServer(bridgeEnv(backend.url), {
    users: [
      { username: "ann", password: "ann-pass-1", displayName: "Ann A." },
      { username: "ben", password: "ben-pass-1" },
    ],
  });
  U = server.users;
  tok = { ann: await server.loginToken(U.ann), ben: await server.loginToken(U.ben) };
});
after(async () => {
  await server?.stop();
  await backend?.close();
  // The backend checked every call: none may have failed its signature.
  assert.equal(backend.stats.badSignatures, 0, "calls with a bad signature");
  assert.ok(backend.calls.length > 20, `the backend saw ${backend.calls.length} calls`);
  assert.ok(backend.calls.every((c) => c.signatureOk && c.headers["x-im-node"] && c.headers["x-im-timestamp"]));
});

const connect = (who, transport = "websocket", extra = {}) =>
  connectOk(server, { transports: [transport], auth: { token: tok[who], ...extra } });
const ack = (socket, event, ...args) => socket.timeout(5000).emitWithAck(event, ...args);

describe("events and acks", () => {
  for (const transport of ["websocket", "polling"]) {
    test(`${transport}: every argument, the user and the rooms reach the backend; its ack comes back`, async () => {
      const { socket, info } = await connect("ann", transport);
      try {
        const a = await ack(socket, "echo", { a: 1 }, "two", 3);
        assert.equal(a.ok, true);
        assert.deepEqual(a.args, [{ a: 1 }, "two", 3]);
        assert.deepEqual(a.user, { id: U.ann.id, username: "ann", user_type: "user", display_name: "Ann A." });
        assert.ok(a.rooms.includes(`user:${U.ann.id}`) && a.rooms.includes("type:user"), JSON.stringify(a.rooms));
        assert.ok(!a.rooms.some((r) => r.startsWith("token:")), "the token room is not the backend's business");
        const call = backend.calls.findLast((c) => c.event === "echo");
        assert.equal(call.body.socket_id, info.socketId);
        assert.equal(call.headers["content-type"], "application/json");
        assert.match(call.headers["x-im-signature"], /^sha256=[0-9a-f]{64}$/);
        const health = await server.http("GET", "/health");
        assert.equal(call.headers["x-im-node"], health.body.node_id);
        assert.equal(call.body.node_id, health.body.node_id);
      } finally {
        closeAll(socket);
      }
    });
  }

  test("socket.io-client 2.x: the ack of a bridged event", async () => {
    const socket = connectV2(server, { transportOptions: { polling: { extraHeaders: { authorization: `Bearer ${tok.ben}` } } } });
    const rec = record(socket);
    try {
      await rec.waitFor("connected");
      const a = await new Promise((res, rej) => {
        const t = setTimeout(() => rej(new Error("no ack")), 5000);
        socket.emit("chat:send", { text: "hi from 2.x" }, (v) => {
          clearTimeout(t);
          res(v);
        });
      });
      assert.equal(a.ok, true);
      assert.deepEqual(a.args, [{ text: "hi from 2.x" }]);
      assert.equal(a.user.id, U.ben.id);
    } finally {
      closeAll(socket);
    }
  });

  test("a reply without ack → {ok:true}; an event sent without ack is still forwarded", async () => {
    const { socket } = await connect("ann");
    try {
      assert.deepEqual(await ack(socket, "noack"), { ok: true });
      socket.emit("echo", { fireAndForget: 42 });
      await eventually(() => backend.calls.find((c) => c.event === "echo" && c.body.args[0]?.fireAndForget === 42), 5000, "the un-acked event at the backend");
    } finally {
      closeAll(socket);
    }
  });

  test("built-in events are never forwarded (send_message, presence:subscribe)", async () => {
    const { socket } = await connect("ann");
    try {
      const bad = await ack(socket, "send_message", { to: U.ben.id, content: "" });
      assert.equal(bad.code, "BAD_REQUEST");
      const sub = await ack(socket, "presence:subscribe", { userIds: [U.ben.id] });
      assert.equal(sub.ok, true);
      assert.ok(Array.isArray(sub.online));
      assert.equal(backend.calls.filter((c) => ["send_message", "presence:subscribe"].includes(c.event)).length, 0);
    } finally {
      closeAll(socket);
    }
  });
});

describe("emit, join, leave, disconnect", () => {
  test("join a room, emit to it (with and without the sender), leave it", async () => {
    const a = await connect("ann");
    const b = await connect("ben", "polling");
    try {
      assert.deepEqual(await ack(a.socket, "room:join", { room: "lobby" }), { ok: true, joined: "lobby" });
      await ack(b.socket, "room:join", { room: "lobby" });
      await ack(a.socket, "room:say", { room: "lobby", text: "hello all" });
      for (const s of [a, b]) {
        const ev = await s.rec.waitFor("room:said", 3000);
        assert.deepEqual(ev.args, [{ from: U.ann.id, text: "hello all" }]);
      }
      await ack(a.socket, "room:say", { room: "lobby", text: "not me", exceptSender: true });
      await b.rec.waitFor("room:said", 3000, (d) => d.text === "not me");
      await expectNothingMore(a.rec, "room:said", 400, (d) => d.text === "not me");
      await ack(b.socket, "room:leave", { room: "lobby" });
      await ack(a.socket, "room:say", { room: "lobby", text: "after leave" });
      await a.rec.waitFor("room:said", 3000, (d) => d.text === "after leave");
      await expectNothingMore(b.rec, "room:said", 400, (d) => d.text === "after leave");
    } finally {
      closeAll(a.socket, b.socket);
    }
  });

  test("emit to_users reaches that user's sockets; an emit without target only the sender", async () => {
    const a = await connect("ann");
    const b1 = await connect("ben");
    const b2 = await connect("ben", "polling");
    try {
      await ack(a.socket, "user:poke", { to: U.ben.id });
      for (const s of [b1, b2]) assert.deepEqual((await s.rec.waitFor("poked", 3000)).args, [{ by: U.ann.id }]);
      await expectNothingMore(a.rec, "poked", 300);
      await ack(b1.socket, "self:ping", { n: 7 });
      assert.deepEqual((await b1.rec.waitFor("pong:app", 3000)).args, [{ n: 7 }]);
      await expectNothingMore([a.rec, b2.rec], "pong:app", 400);
    } finally {
      closeAll(a.socket, b1.socket, b2.socket);
    }
  });

  test("reserved names: no forged `connected`, no user:/type:/token: rooms joined or left", async () => {
    const { socket, rec } = await connect("ann");
    try {
      await ack(socket, "emit:reserved");
      await rec.waitFor("ok:event", 3000);
      assert.equal(eventsOf(rec, "connected").length, 1, "only the server's own connected");
      assert.deepEqual(await ack(socket, "join:reserved"), { ok: true });
      await ack(socket, "leave:reserved");
      const { rooms } = await ack(socket, "echo");
      assert.ok(rooms.includes("allowed"), JSON.stringify(rooms));
      assert.ok(rooms.includes(`user:${U.ann.id}`), "user room kept");
      assert.ok(!rooms.includes("user:999") && !rooms.includes("type:admin"), JSON.stringify(rooms));
    } finally {
      closeAll(socket);
    }
  });

  for (const [code, expected] of [["RATE_LIMITED", "RATE_LIMITED"], [undefined, "FORBIDDEN"]]) {
    test(`disconnect {code:${code}} → the ack, then error {${expected}}, then a server disconnect`, async () => {
      const { socket, rec } = await connect("ann");
      try {
        const a = await ack(socket, "kick", code ? { code } : {});
        assert.deepEqual(a, { ok: true, bye: true });
        const err = await rec.waitFor("error", 3000);
        assert.deepEqual(err.args[0], { code: expected, message: "the backend ended this session" });
        const d = await rec.waitFor("disconnect", 3000);
        assert.equal(d.args[0], "io server disconnect");
      } finally {
        closeAll(socket);
      }
    });
  }
});

describe("failures keep the socket", () => {
  const cases = [
    ["a 500", "fail:status", { status: 500 }, "BACKEND_UNAVAILABLE"],
    ["a 503", "fail:status", { status: 503 }, "BACKEND_UNAVAILABLE"],
    ["a reply that is not JSON", "fail:notjson", {}, "BACKEND_UNAVAILABLE"],
    ["a JSON reply that is not an object", "fail:array", {}, "BACKEND_UNAVAILABLE"],
    ["no answer within timeout_ms", "fail:slow", { ms: 3000 }, "BACKEND_UNAVAILABLE"],
    ["a 4xx with a contract code", "fail:status", { status: 429, code: "RATE_LIMITED", message: "too fast, says the app" }, "RATE_LIMITED", "too fast, says the app"],
    ["a 4xx with another code", "fail:status", { status: 403, code: "NOPE", message: "not your room" }, "FORBIDDEN", "not your room"],
    ["a 4xx without a body", "fail:status", { status: 404, body: "" }, "FORBIDDEN"],
  ];
  for (const [label, event, arg, code, message] of cases) {
    test(`${label} → ack {ok:false, code:${code}}`, async () => {
      const { socket, rec } = await connect("ben");
      try {
        const a = await ack(socket, event, { ...arg, marker: MARKER });
        assert.equal(a.ok, false, JSON.stringify(a));
        assert.equal(a.code, code);
        assert.equal(typeof a.message, "string");
        if (message) assert.equal(a.message, message);
        assert.ok(!a.message.includes(backend.url), "the backend's URL is not the client's business");
        await sleep(100);
        assert.ok(socket.connected);
        assert.equal((await ack(socket, "echo", 1)).ok, true, "the socket still works");
        assert.deepEqual(rec.names(), ["connect", "connected"]);
      } finally {
        closeAll(socket);
      }
    });
  }

  test("backend unreachable → BACKEND_UNAVAILABLE; socket stays", async () => {
    const down = await startServer({ ...bridgeEnv(`http://127.0.0.1:${await free()}/nothing-here`) });
    try {
      const t = await down.loginToken(ADMIN);
      const { socket } = await connectOk(down, { auth: { token: t } });
      const a = await ack(socket, "chat:send", { text: "anyone?" });
      assert.equal(a.code, "BACKEND_UNAVAILABLE");
      assert.ok(socket.connected);
      closeAll(socket);
    } finally {
      await down.stop();
    }
  });

  test("/metrics counts calls by type and result; one log line per failed call, never the payload", async () => {
    const m = (await server.http("GET", "/metrics")).body;
    assert.match(m, /im_bridge_requests_total\{result="ok",type="event"\} \d+/);
    assert.match(m, /im_bridge_requests_total\{result="BACKEND_UNAVAILABLE",type="event"\} \d+/);
    assert.match(m, /im_bridge_requests_total\{result="RATE_LIMITED",type="event"\} \d+/);
    assert.match(m, /im_bridge_duration_seconds_count\{type="event"\} \d+/);
    assert.match(m, /im_events_total\{direction="in",event="app"\} \d+/);
    const log = stripAnsi(server.stderr + server.stdout);
    const failed = log.split("\n").filter((l) => l.includes("bridge call failed") && l.includes("fail:status"));
    assert.ok(failed.some((l) => /status=500/.test(l) && /type=event/.test(l) && /elapsed_ms=\d+/.test(l)), failed.join("\n"));
    assert.ok(!log.includes(MARKER), "a payload leaked into the log");
    assert.ok(!log.includes(SECRET), "the bridge secret leaked into the log");
  });
});

describe("order and back-pressure", () => {
  test("one socket's events reach the backend one at a time, in the order sent, under a slow first reply", async () => {
    const { socket, info } = await connect("ann");
    try {
      const acks = [ack(socket, "hold", { key: "order-1", n: 1 })];
      // A second socket keeps its own lane: its calls are not stuck behind this one.
      const other = await connect("ben");
      for (const n of [2, 3]) acks.push(ack(socket, "seq", { n }));
      await eventually(() => backend.calls.find((c) => c.event === "hold" && c.body.args[0].key === "order-1"), 5000, "the held call");
      assert.equal((await ack(other.socket, "echo", "meanwhile")).ok, true, "another socket is answered while the first is held");
      closeAll(other.socket);
      const mine = () => backend.calls.filter((c) => c.body?.socket_id === info.socketId && ["hold", "seq"].includes(c.event));
      assert.equal(mine().length, 1, `nothing else of this socket reached the backend while its first call was held: ${JSON.stringify(mine().map((c) => [c.event, c.body.args]))}`);
      backend.release("order-1");
      const results = await Promise.all(acks);
      assert.deepEqual(results.map((r) => r.n), [1, 2, 3]);
      assert.deepEqual(mine().map((c) => c.body.args[0].n), [1, 2, 3]);
      assert.equal(backend.stats.maxInflightBySocket.get(info.socketId), 1, "calls of this socket in flight at once");
    } finally {
      closeAll(socket);
    }
  });

  test("over queue_per_socket (3) waiting → ack RATE_LIMITED at once, the queued ones still answered", async () => {
    const { socket } = await connect("ben");
    try {
      const held = ack(socket, "hold", { key: "bound-1", n: 1 });
      const queued = [ack(socket, "seq", { n: 2 }), ack(socket, "seq", { n: 3 })];
      const over = [ack(socket, "seq", { n: 4 }), ack(socket, "seq", { n: 5 })];
      for (const r of await Promise.all(over)) {
        assert.equal(r.ok, false);
        assert.equal(r.code, "RATE_LIMITED");
      }
      backend.release("bound-1");
      assert.deepEqual((await Promise.all([held, ...queued])).map((r) => r.n), [1, 2, 3]);
      assert.equal((await ack(socket, "seq", { n: 6 })).n, 6, "the lane drained");
    } finally {
      closeAll(socket);
    }
  });

  test("different sockets' calls run concurrently", async () => {
    const socks = await Promise.all([connect("ann"), connect("ben"), connect("ann", "polling")]);
    try {
      const acks = socks.map((s, i) => ack(s.socket, "hold", { key: "conc-1", n: i }));
      await eventually(() => backend.calls.filter((c) => c.event === "hold" && c.body.args[0].key === "conc-1").length === 3, 5000, "three held calls at once");
      backend.release("conc-1");
      assert.deepEqual((await Promise.all(acks)).map((r) => r.n), [0, 1, 2]);
    } finally {
      closeAll(socks.map((s) => s.socket));
    }
  });
});

describe("on_disconnect", () => {
  test("the backend is told, with the reason", async () => {
    const { socket, info } = await connect("ann");
    socket.close();
    const call = await eventually(() => backend.callsOf("disconnect").find((c) => c.body.socket_id === info.socketId), 5000, "the disconnect call");
    assert.equal(call.body.user.id, U.ann.id);
    assert.equal(call.body.reason, "client namespace disconnect");
  });

  test("a failing backend gets at most 3 tries", async () => {
    backend.mode.disconnectStatus = 503;
    try {
      const { socket, info } = await connect("ben");
      socket.close();
      const mine = () => backend.callsOf("disconnect").filter((c) => c.body.socket_id === info.socketId);
      await eventually(() => mine().length === 3, 5000, "three tries");
      await sleep(1500);
      assert.equal(mine().length, 3);
    } finally {
      backend.mode.disconnectStatus = 200;
    }
  });
});

describe("on_connect", () => {
  let gated;
  before(async () => {
    gated = await startServer(bridgeEnv(backend.url, { IM_BRIDGE__ON_CONNECT: "true", IM_BRIDGE__EVENTS: "chat:*,joinRoom" }));
  });
  after(async () => gated?.stop());

  test("the reply joins rooms and becomes connected.app; the backend sees the handshake without the token", async () => {
    const t = await gated.loginToken(ADMIN);
    const { socket, info } = await connectOk(gated, { transports: ["polling"], auth: { token: t, rooms: ["vip", "user:5"], client: "web" } });
    try {
      assert.deepEqual(info.app, { greeting: "hello admin", plan: "gold" });
      const call = backend.callsOf("connect").find((c) => c.body.socket_id === info.socketId);
      assert.deepEqual(call.body.handshake.auth, { rooms: ["vip", "user:5"], client: "web" });
      assert.equal(call.body.handshake.transport, "polling");
      assert.equal(call.body.handshake.address, "127.0.0.1");
      assert.ok(!JSON.stringify(call.body).includes(t), "the token is never forwarded");
      const { rooms } = await ack(socket, "chat:send", "x");
      assert.ok(rooms.includes("vip") && !rooms.includes("user:5"), JSON.stringify(rooms));
    } finally {
      closeAll(socket);
    }
  });

  test("events: names and prefixes only — others stay BAD_REQUEST, matching ones are forwarded", async () => {
    const t = await gated.loginToken(ADMIN);
    const { socket } = await connectOk(gated, { auth: { token: t } });
    try {
      assert.equal((await ack(socket, "chat:typing")).ok, true);
      assert.equal((await ack(socket, "joinRoom", "r1")).ok, true);
      const other = await ack(socket, "order:update", 1);
      assert.equal(other.code, "BAD_REQUEST");
      assert.equal(backend.calls.filter((c) => c.event === "order:update").length, 0);
    } finally {
      closeAll(socket);
    }
  });

  for (const [label, extra, code, message] of [
    ["a reply's disconnect", { refuse: "USER_DISABLED" }, "USER_DISABLED", "the backend says no"],
    ["a 4xx with another code", { status: 403, code: "BANNED", message: "banned here" }, "FORBIDDEN", "banned here"],
    ["a 5xx", { status: 502 }, "BACKEND_UNAVAILABLE"],
  ]) {
    test(`${label} refuses the connection (legacy: error {${code}} then disconnect)`, async () => {
      const t = await gated.loginToken(ADMIN);
      const { rec } = await connectRefusedLegacy(gated, { auth: { token: t, ...extra } });
      assert.deepEqual(rec.names(), ["connect", "error", "disconnect"]);
      const err = eventsOf(rec, "error")[0].args[0];
      assert.equal(err.code, code);
      if (message) assert.equal(err.message, message);
    });
  }

  test("each refusal is the handshake's verdict: counted in im_handshakes_total and in the handshake's log line", async () => {
    const m = (await gated.http("GET", "/metrics")).body;
    for (const code of ["USER_DISABLED", "FORBIDDEN", "BACKEND_UNAVAILABLE"]) {
      assert.match(m, new RegExp(`im_handshakes_total\\{result="${code}",source="auth"\\} [1-9]`), code);
    }
    const log = stripAnsi(gated.stderr + gated.stdout).split("\n");
    assert.ok(log.some((l) => l.includes("im_server::handshake") && /verdict=USER_DISABLED/.test(l)), "no handshake log line with the hook's verdict");
  });

  test("backend down → refused with BACKEND_UNAVAILABLE (fail closed), strict mode: connect_error", async () => {
    const down = await startServer(bridgeEnv(`http://127.0.0.1:${await free()}/`, { IM_BRIDGE__ON_CONNECT: "true", IM_AUTH__FAILURE_MODE: "strict" }));
    try {
      const t = await down.loginToken(ADMIN);
      const s = connectV4(down, { auth: { token: t } });
      const err = await once(s, "connect_error").then(([e]) => e).finally(() => s.close());
      assert.equal(err.message, "BACKEND_UNAVAILABLE");
    } finally {
      await down.stop();
    }
  });
});

describe("config", () => {
  test("production refuses a bridge without a secret, naming the key", async () => {
    await assert.rejects(
      startServer({ NODE_ENV: "production", IM_BRIDGE__URL: backend.url, IM_CORS__ORIGINS: "http://app.example" }),
      (e) => /bridge\.secret/.test(e.message),
    );
  });

  test("a bridge url that is not http(s) is refused, naming the key", async () => {
    await assert.rejects(startServer({ IM_BRIDGE__URL: "ftp://x/y" }), (e) => /bridge\.url/.test(e.message));
  });
});
