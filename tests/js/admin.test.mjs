// Contract §13, the protocol side of the Socket.IO Admin UI: socket.io-client 4 against
// `/admin` as @socket.io/admin-ui speaks it — login (credentials, session id), the tally
// shared with /auth/login, config / server_stats / all_sockets / live socket and room events
// in the UI's shapes, redaction, read-only refusing `_disconnect`, `_disconnect` sending
// `error {code:"FORBIDDEN"}` first, no [admin] = no namespace and a 404 page, and two nodes
// sharing a Redis of the test's own.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createConnection, createServer } from "node:net";
import { readFileSync } from "node:fs";
import { io } from "socket.io-client";
import {
  SERVER_BIN,
  startServer,
  connectOk,
  record,
  closeAll,
  eventsOf,
  eventually,
  sleep,
  KEFU,
  ISO_UTC,
} from "./harness.mjs";

const OPS = { username: "ops", password: "ops-pass-1" };
const HASH = execFileSync(SERVER_BIN, ["admin", "hash-password", "--password", OPS.password], {
  env: { PATH: process.env.PATH },
})
  .toString()
  .trim();
const REDACTED = "[redacted]";
// The feed ticks every 2 s; every wait for a live event allows several ticks.
const FEED_MS = 10_000;

const adminEnv = (extra = {}) => ({
  IM_ADMIN__USERNAME: OPS.username,
  IM_ADMIN__PASSWORD_HASH: HASH,
  ...extra,
});

/** A socket to `/admin` recording everything; resolves after `connect` or `connect_error`. */
async function admin(server, auth = OPS, opts = {}) {
  const socket = io(`${server.url}/admin`, { auth, reconnection: false, forceNew: true, timeout: 5000, ...opts });
  const rec = record(socket);
  await new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`/admin: neither connect nor connect_error: ${JSON.stringify(rec.events)}`)), 5000);
    const done = () => (clearTimeout(t), res());
    socket.once("connect", done);
    socket.once("connect_error", done);
  });
  return { socket, rec };
}

/** Logged-in admin socket with its first `all_sockets` received. */
async function adminReady(server) {
  const a = await admin(server);
  assert.deepEqual(a.rec.names().slice(0, 1), ["connect"], JSON.stringify(a.rec.events));
  const all = await a.rec.waitFor("all_sockets", FEED_MS);
  return { ...a, all: all.args[0] };
}

const connectIm = (server, token, opts = {}) => connectOk(server, { transports: ["websocket"], auth: { token }, ...opts });

describe("admin: login", () => {
  let server;
  before(async () => {
    server = await startServer(adminEnv({ IM_AUTH__LOGIN_MAX_FAILURES: "3" }));
  });
  after(async () => server?.stop());

  test("wrong password, unknown username or no credentials → connect_error INVALID_CREDENTIALS, even in legacy mode", async () => {
    for (const auth of [
      { username: OPS.username, password: "wrong" },
      { username: "nobody", password: OPS.password },
      {},
      { sessionId: "1999999999.00ff" },
    ]) {
      const a = await admin(server, auth);
      try {
        assert.deepEqual(a.rec.names(), ["connect_error"], `${JSON.stringify(auth)}: ${JSON.stringify(a.rec.events)}`);
        assert.equal(a.rec.events[0].args[0].message, "INVALID_CREDENTIALS");
        assert.equal(a.socket.connected, false);
      } finally {
        a.socket.close();
      }
    }
  });

  test("the right credentials: session id, config, server_stats, all_sockets; the session id alone logs in again", async () => {
    const a = await adminReady(server);
    try {
      const [sessionId] = (await a.rec.waitFor("session")).args;
      assert.match(sessionId, /^\d+\.[0-9a-f]{64}$/);
      const [config] = (await a.rec.waitFor("config")).args;
      assert.deepEqual(config.supportedFeatures, ["AGGREGATED_EVENTS", "ALL_EVENTS"], "read-only by default");
      const [stats] = (await a.rec.waitFor("server_stats")).args;
      assert.equal(typeof stats.serverId, "string");
      assert.equal(stats.pid > 0, true);
      assert.deepEqual(
        stats.namespaces.map((n) => n.name),
        ["/im", "/admin"],
      );
      assert.equal(stats.namespaces[1].socketsCount, 1, "this admin socket");
      assert.deepEqual(a.all, [], "no /im socket yet");

      const again = await admin(server, { sessionId });
      try {
        assert.equal(again.rec.names()[0], "connect", JSON.stringify(again.rec.events));
        await again.rec.waitFor("all_sockets");
      } finally {
        again.socket.close();
      }
      const forged = await admin(server, { sessionId: sessionId.replace(/^\d+/, (n) => String(Number(n) + 1)) });
      forged.socket.close();
      assert.deepEqual(forged.rec.names(), ["connect_error"], "the expiry is under the MAC");
    } finally {
      a.socket.close();
    }
  });
});

describe("admin: the login tally", () => {
  let server;
  before(async () => {
    // trust_proxy: each attempt comes from its own X-Forwarded-For address, so only the
    // per-username count can be what refuses it (the per-address one never fills up).
    server = await startServer(adminEnv({ IM_AUTH__LOGIN_MAX_FAILURES: "3", IM_SERVER__TRUST_PROXY: "true" }));
  });
  after(async () => server?.stop());
  let n = 0;
  const from = () => ({ "x-forwarded-for": `203.0.113.${++n}` });
  const attempt = async (auth) => {
    const a = await admin(server, auth, { transports: ["polling"], extraHeaders: from() });
    a.socket.close();
    assert.deepEqual(a.rec.names(), ["connect_error"], JSON.stringify(a.rec.events));
    return a.rec.events[0].args[0].message;
  };

  test("failures count per username with /auth/login: RATE_LIMITED for both, even with the right password", async () => {
    const codes = [];
    // login_max_failures = 3: three failures are answered as such, the one after is refused.
    for (let i = 0; i < 4; i++) codes.push(await attempt({ username: "kefu1", password: "bad" }));
    assert.deepEqual(codes, ["INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "RATE_LIMITED"]);
    const r = await server.http("POST", "/auth/login", { body: KEFU, headers: from() });
    assert.equal(r.status, 429, `kefu1's own login is locked too: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.code, "RATE_LIMITED");

    // And the other way round: failed /auth/login attempts for "ops" lock the admin login.
    const http = [];
    for (let i = 0; i < 4; i++) {
      const r = await server.http("POST", "/auth/login", { body: { username: OPS.username, password: "bad" }, headers: from() });
      http.push(r.status);
    }
    assert.deepEqual(http, [401, 401, 401, 429]);
    assert.equal(await attempt(OPS), "RATE_LIMITED", "the right password during a lockout");
    const other = await admin(server, { username: "someone", password: "x" }, { transports: ["polling"], extraHeaders: from() });
    other.socket.close();
    assert.equal(other.rec.events[0].args[0].message, "INVALID_CREDENTIALS", "other usernames are not locked");
  });
});

describe("admin: what the UI is shown", () => {
  let server;
  let kefuToken;
  let adminToken;
  before(async () => {
    server = await startServer(adminEnv({ IM_ADMIN__READONLY: "false" }));
    adminToken = await server.loginToken();
    kefuToken = await server.loginToken(KEFU);
  });
  after(async () => server?.stop());

  test("all_sockets: every /im socket with user, transport, address, rooms; never a token", async () => {
    const ws = await connectIm(server, adminToken);
    // polling, with the token in the query and the header, and a cookie: all must be redacted
    const polling = await connectOk(server, {
      transports: ["polling"],
      query: { token: kefuToken, lang: "fr" },
      extraHeaders: { authorization: `Bearer ${kefuToken}`, cookie: `token=${kefuToken}; theme=dark` },
    });
    const a = await adminReady(server);
    try {
      const byId = Object.fromEntries(a.all.map((s) => [s.id, s]));
      assert.deepEqual(Object.keys(byId).sort(), [ws.socket.id, polling.socket.id].sort());
      const w = byId[ws.socket.id];
      assert.equal(w.nsp, "/im");
      assert.equal(w.transport, "websocket");
      assert.equal(w.clientId, ws.socket.id);
      assert.deepEqual(
        { userId: w.data.userId, username: w.data.username, userType: w.data.userType },
        { userId: 1, username: "admin", userType: "admin" },
      );
      assert.equal(w.handshake.address, "127.0.0.1");
      assert.ok(w.rooms.includes("user:1") && w.rooms.includes("type:admin"), JSON.stringify(w.rooms));
      assert.ok(w.rooms.some((r) => /^token:[0-9a-f]{12}…$/.test(r)), `token room fingerprinted: ${w.rooms}`);
      assert.match(w.handshake.time, ISO_UTC);
      assert.ok(Math.abs(w.handshake.issued - Date.now()) < 600_000);

      const p = byId[polling.socket.id];
      assert.equal(p.transport, "polling");
      assert.equal(p.data.userId, KEFU.id);
      assert.equal(p.handshake.headers.authorization, REDACTED);
      assert.equal(p.handshake.headers.cookie, REDACTED);
      assert.equal(p.handshake.query.token, REDACTED);
      assert.equal(p.handshake.query.lang, "fr", "other query parameters are shown");
      assert.equal(p.handshake.query.EIO, "4");
      const text = JSON.stringify(a.all);
      for (const t of [kefuToken, adminToken]) {
        assert.ok(!text.includes(t), "a whole token reached the UI");
        assert.ok(!text.includes(t.split(".")[2]), "a token's signature reached the UI");
      }
    } finally {
      closeAll(a.socket, ws.socket, polling.socket);
    }
  });

  test("live: socket_connected, room_joined, room_left, socket_disconnected, and server_stats counting them", async () => {
    const a = await adminReady(server);
    try {
      const im = await connectIm(server, kefuToken);
      const sid = im.socket.id; // socket.io-client forgets it on disconnect
      const [sock, at] = (await a.rec.waitFor("socket_connected", FEED_MS, (s) => s.id === sid)).args;
      assert.equal(sock.data.userId, KEFU.id);
      assert.equal(sock.transport, "websocket");
      assert.match(at, ISO_UTC);
      const sub = await im.socket.timeout(5000).emitWithAck("presence:subscribe", { userIds: [1] });
      assert.equal(sub.ok, true);
      const joined = await a.rec.waitFor("room_joined", FEED_MS, (_nsp, _room, id) => id === sid);
      assert.deepEqual(joined.args.slice(0, 3), ["/im", "presence:1", sid]);
      im.socket.emit("presence:unsubscribe", { userIds: [1] });
      const left = await a.rec.waitFor("room_left", FEED_MS, (_nsp, _room, id) => id === sid);
      assert.deepEqual(left.args.slice(0, 3), ["/im", "presence:1", sid]);
      await a.rec.waitFor(
        "server_stats",
        FEED_MS,
        (s) => s.namespaces[0].socketsCount === 1 && s.aggregatedEvents.some((e) => e.type === "rawConnection"),
      );
      im.socket.close();
      const gone = await a.rec.waitFor("socket_disconnected", FEED_MS, (_nsp, id) => id === sid);
      assert.equal(gone.args[0], "/im");
    } finally {
      a.socket.close();
    }
  });

  test("after a time with no admin, the next admin is shown what changed meanwhile, and later changes live", async () => {
    const first = await adminReady(server);
    first.socket.close();
    await sleep(8_000); // longer than the feed's 7 s watch window: it rests now
    const im = await connectIm(server, kefuToken);
    const sid = im.socket.id;
    const a = await adminReady(server);
    try {
      assert.ok(a.all.some((s) => s.id === sid), "the socket that came while nobody watched");
      im.socket.close();
      await a.rec.waitFor("socket_disconnected", FEED_MS, (_nsp, id) => id === sid);
      assert.deepEqual(eventsOf(a.rec, "socket_connected", (s) => s.id === sid), [], "already in all_sockets");
    } finally {
      closeAll(a.socket, im.socket);
    }
  });

  test("_disconnect: the /im socket gets error FORBIDDEN first, then the server disconnect", async () => {
    const im = await connectIm(server, kefuToken);
    const sid = im.socket.id;
    const a = await adminReady(server);
    try {
      const [config] = (await a.rec.waitFor("config")).args;
      assert.deepEqual(config.supportedFeatures, ["DISCONNECT", "AGGREGATED_EVENTS", "ALL_EVENTS"]);
      const ack = await a.socket.timeout(5000).emitWithAck("_disconnect", "/im", false, sid);
      assert.deepEqual(ack, { ok: true, disconnected: 1 });
      await im.rec.waitFor("disconnect");
      const names = im.rec.names();
      assert.deepEqual(names.slice(names.indexOf("connected") + 1), ["error", "disconnect"]);
      const [err] = eventsOf(im.rec, "error")[0].args;
      assert.equal(err.code, "FORBIDDEN");
      assert.match(err.message, /operator/);
      assert.equal(eventsOf(im.rec, "disconnect")[0].args[0], "io server disconnect");
      await a.rec.waitFor("socket_disconnected", FEED_MS, (_nsp, id) => id === sid);
      const metrics = await server.http("GET", "/metrics");
      assert.match(metrics.body, /im_kicks_total\{reason="FORBIDDEN"\} 1/);

      // Bad requests are answered, never crash anything.
      const bad = await a.socket.timeout(5000).emitWithAck("_disconnect", "/im", false, null);
      assert.equal(bad.code, "BAD_REQUEST", "a whole namespace is not offered");
      const other = await a.socket.timeout(5000).emitWithAck("_disconnect", "/admin", false, a.socket.id);
      assert.equal(other.code, "BAD_REQUEST");
      const join = await a.socket.timeout(5000).emitWithAck("join", "/im", "lobby");
      assert.equal(join.code, "FORBIDDEN");
      assert.equal(a.socket.connected, true);
    } finally {
      closeAll(a.socket, im.socket);
    }
  });
});

describe("admin: read-only (the default)", () => {
  let server;
  before(async () => {
    server = await startServer(adminEnv());
  });
  after(async () => server?.stop());

  test("_disconnect is refused with FORBIDDEN and the /im socket stays connected", async () => {
    const im = await connectIm(server, await server.loginToken(KEFU));
    const a = await adminReady(server);
    try {
      const ack = await a.socket.timeout(5000).emitWithAck("_disconnect", "/im", false, im.socket.id);
      assert.equal(ack.ok, false);
      assert.equal(ack.code, "FORBIDDEN");
      assert.match(ack.message, /read-only/);
      const alive = await im.socket.timeout(5000).emitWithAck("presence:subscribe", { userIds: [1] });
      assert.equal(alive.ok, true, "the socket still answers");
      assert.deepEqual(eventsOf(im.rec, "error"), []);
      assert.equal(im.socket.connected, true);
    } finally {
      closeAll(a.socket, im.socket);
    }
  });
});

describe("admin: origins, production profile", () => {
  let server;
  before(async () => {
    // production: cors.origins lists nothing by default, yet the page at /admin/ must connect
    server = await startServer(adminEnv({ NODE_ENV: "production" }));
  });
  after(async () => server?.stop());

  test("the server's own origin is let in; another origin gets ORIGIN_DENIED", async () => {
    const ws = { transports: ["websocket"] };
    const same = await admin(server, OPS, { ...ws, extraHeaders: { origin: server.url } });
    same.socket.close();
    assert.equal(same.rec.names()[0], "connect", JSON.stringify(same.rec.events));
    const foreign = await admin(server, OPS, { ...ws, extraHeaders: { origin: "http://evil.example" } });
    foreign.socket.close();
    assert.deepEqual(foreign.rec.names(), ["connect_error"]);
    assert.equal(foreign.rec.events[0].args[0].message, "ORIGIN_DENIED");
  });
});

describe("admin: without [admin]", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => server?.stop());

  test("the namespace does not exist and /admin/ answers 404", async () => {
    const a = await admin(server);
    a.socket.close();
    assert.deepEqual(a.rec.names(), ["connect_error"]);
    assert.equal(a.rec.events[0].args[0].message, "Invalid namespace");
    for (const path of ["/admin/", "/admin/index.html"]) {
      const r = await server.http("GET", path);
      assert.equal(r.status, 404, path);
    }
  });
});

describe("admin: the page", () => {
  let server;
  before(async () => {
    server = await startServer(adminEnv());
  });
  after(async () => server?.stop());

  test("/admin/ serves the vendored UI, every asset it names, nothing from the internet", async () => {
    const res = await fetch(`${server.url}/admin/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type"), /text\/html/);
    const html = await res.text();
    assert.match(html, /<title>Socket.IO Admin UI<\/title>/);
    assert.doesNotMatch(html, /https?:\/\//, "no CDN");
    const refs = [...html.matchAll(/(?:href|src)="([^"]+)"/g)].map((m) => m[1]);
    assert.ok(refs.length >= 5, JSON.stringify(refs));
    for (const ref of refs) {
      const r = await fetch(`${server.url}/admin/${ref}`);
      assert.equal(r.status, 200, ref);
      assert.ok((await r.arrayBuffer()).byteLength > 0, ref);
    }
    const font = await fetch(`${server.url}/admin/mdi/fonts/materialdesignicons-webfont.woff2`);
    assert.equal(font.status, 200);
    assert.equal(font.headers.get("content-type"), "font/woff2");
    const missing = await server.http("GET", "/admin/nope.js");
    assert.equal(missing.status, 404);
  });

  test("the vendored build is the pinned npm version (admin-ui/vendor.sh was run after the last pin change)", () => {
    const dir = new URL("../../admin-ui/", import.meta.url);
    const pins = JSON.parse(readFileSync(new URL("package.json", dir))).dependencies;
    const vendored = readFileSync(new URL("vendor/VERSION", dir), "utf8").trim();
    assert.equal(vendored, `@socket.io/admin-ui ${pins["@socket.io/admin-ui"]}, @mdi/font ${pins["@mdi/font"]}`);
  });
});

// ---------------------------------------------------------------------------------------
// Two nodes: a redis-server of this test's own (pub/sub is global to a Redis server, so a
// shared one would mix in other runs' nodes), one SQLite file for both.

async function freePort() {
  const srv = createServer();
  await new Promise((res) => srv.listen(0, "127.0.0.1", res));
  const { port } = srv.address();
  await new Promise((res) => srv.close(res));
  return port;
}

async function startRedis() {
  const port = await freePort();
  const bin = process.env.IM_TEST_REDIS_SERVER_BIN || "redis-server";
  const child = spawn(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  const failed = new Promise((_, rej) => child.once("error", (e) => rej(new Error(`${bin}: ${e.message}`))));
  await Promise.race([
    failed,
    eventually(
      () =>
        new Promise((res) => {
          const c = createConnection(port);
          c.once("connect", () => (c.destroy(), res(true)));
          c.once("error", () => res(false));
        }),
      10_000,
      "redis-server to listen",
    ),
  ]);
  return { url: `redis://127.0.0.1:${port}/?protocol=resp3`, stop: () => child.kill("SIGKILL") };
}


describe("admin: two nodes with Redis", () => {
  let redis;
  let a;
  let b;
  before(async () => {
    redis = await startRedis();
    const env = adminEnv({ REDIS_URL: redis.url, IM_ADMIN__READONLY: "false", IM_REDIS__LEASE_SECS: "3" });
    a = await startServer({ ...env, IM_SERVER__NODE_ID: "node-a" });
    b = await startServer({ ...env, IM_SERVER__NODE_ID: "node-b", DATABASE_URL: `sqlite://${a.dir}/im.db?mode=rwc` });
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
    redis?.stop();
  });

  test("an admin on node A sees node B's sockets and stats, live, and disconnects one of them", async () => {
    const token = await b.loginToken(KEFU);
    const early = await connectIm(b, token);
    const earlyId = early.socket.id;
    const ad = await adminReady(a);
    let late;
    try {
      const remote = ad.all.find((s) => s.id === earlyId);
      assert.ok(remote, `B's socket in A's all_sockets: ${JSON.stringify(ad.all)}`);
      assert.equal(remote.data.userId, KEFU.id);
      assert.equal(remote.data.node, "node-b");
      assert.equal(remote.transport, "websocket");
      assert.ok(remote.rooms.includes(`user:${KEFU.id}`));
      assert.equal(remote.handshake.address, "127.0.0.1");

      const servers = new Set();
      await eventually(async () => {
        for (const e of eventsOf(ad.rec, "server_stats")) servers.add(e.args[0].serverId);
        return servers.has("node-a") && servers.has("node-b");
      }, FEED_MS, "server_stats of both nodes");

      // Past the 7 s that B's snapshot request counts as "an admin is watching": from then on
      // only A's heartbeats keep B announcing its changes.
      await sleep(8_000);
      late = await connectIm(b, token);
      const [sock] = (await ad.rec.waitFor("socket_connected", FEED_MS, (s) => s.id === late.socket.id)).args;
      assert.equal(sock.data.node, "node-b");

      const ack = await ad.socket.timeout(10_000).emitWithAck("_disconnect", "/im", false, earlyId);
      assert.deepEqual(ack, { ok: true, disconnected: 1 });
      await early.rec.waitFor("disconnect", 10_000);
      const names = early.rec.names();
      assert.deepEqual(names.slice(names.indexOf("connected") + 1), ["error", "disconnect"]);
      assert.equal(eventsOf(early.rec, "error")[0].args[0].code, "FORBIDDEN");
      await ad.rec.waitFor("socket_disconnected", FEED_MS, (_nsp, id) => id === earlyId);
      assert.equal(late.socket.connected, true, "only the one socket");
    } finally {
      closeAll(ad.socket, early.socket, late?.socket);
    }
  });
});
