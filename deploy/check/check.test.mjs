// Client side of the deploy recipe test (run by deploy/test.sh, not on its own): real
// socket.io-client 4 through nginx (deploy/nginx/im-server.conf) to two im-server nodes run by PM2
// (deploy/pm2/ecosystem.config.js), sharing Redis and PostgreSQL.
//
// nginx balances with `hash $remote_addr consistent`, so each client here binds its own loopback
// address (127.0.0.x): the test first finds one address that lands on each node, then puts the two
// users on DIFFERENT nodes — every delivery and kick below crosses nodes through Redis.
//
// Environment (set by deploy/test.sh):
//   IM_NGINX_URL     http://127.0.0.1:<nginx port>
//   IM_NODE_IDS      comma list of the node ids PM2 started (IM_SERVER__NODE_ID)
//   IM_USER_A/B      "username:password" of two users that exist
//   IM_RELOAD_CMD    shell command that runs `pm2 reload` on the ecosystem file
//   IM_NGINX_READ_TIMEOUT  proxy_read_timeout of the conf's /socket.io/ location (e.g. 75s)

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { spawn } from "node:child_process";
import { io } from "socket.io-client";

const NGINX = process.env.IM_NGINX_URL;
const NODE_IDS = (process.env.IM_NODE_IDS || "").split(",").filter(Boolean);
const [UA, PA] = (process.env.IM_USER_A || "").split(":");
const [UB, PB] = (process.env.IM_USER_B || "").split(":");
const RELOAD_CMD = process.env.IM_RELOAD_CMD;
const READ_TIMEOUT = process.env.IM_NGINX_READ_TIMEOUT || "75s"; // proxy_read_timeout of /socket.io/
const WAIT = 15_000;

// ---------------------------------------------------------------------------------------------
// helpers: HTTP from a chosen local address, sockets, bounded waits

function within(ms, what, p) {
  let t;
  return Promise.race([
    p,
    new Promise((_, rej) => (t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms))),
  ]).finally(() => clearTimeout(t));
}

/** JSON request through nginx from local address `from`; resolves {status, body}. */
function req(from, method, path, { token, body } = {}) {
  return within(
    10_000,
    `${method} ${path} from ${from}`,
    new Promise((res, rej) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const u = new URL(NGINX + path);
      const r = http.request(
        {
          host: u.hostname,
          port: u.port,
          path: u.pathname + u.search,
          method,
          localAddress: from,
          agent: false,
          headers: {
            accept: "application/json",
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(data ? { "content-type": "application/json", "content-length": Buffer.byteLength(data) } : {}),
          },
        },
        (resp) => {
          let text = "";
          resp.setEncoding("utf8");
          resp.on("data", (d) => (text += d));
          resp.on("end", () => {
            let parsed = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              /* not JSON */
            }
            res({ status: resp.statusCode, body: parsed });
          });
        },
      );
      r.on("error", rej);
      if (data) r.write(data);
      r.end();
    }),
  );
}

async function login(from, username, password) {
  const r = await req(from, "POST", "/auth/login", { body: { username, password } });
  assert.equal(r.status, 200, `login ${username}: ${JSON.stringify(r.body)}`);
  return { token: r.body.data.token, id: r.body.data.user.id };
}

const open = new Set();

/** A socket.io-client socket to /im through nginx from local address `from`, recording events. */
function connect(from, token, opts = {}) {
  const s = io(`${NGINX}/im`, {
    auth: { token },
    agent: new http.Agent({ localAddress: from }),
    localAddress: from, // websocket transport (ws) reads it directly
    reconnection: false,
    forceNew: true,
    timeout: 10_000,
    ...opts,
  });
  s.events = [];
  s.onAny((event, ...args) => s.events.push({ event, args }));
  s.on("disconnect", (reason) => s.events.push({ event: "disconnect", args: [reason] }));
  open.add(s);
  return s;
}

function next(socket, event, pred = () => true, ms = WAIT) {
  return within(
    ms,
    `${event} on socket ${socket.id ?? "(not connected)"}`,
    new Promise((res, rej) => {
      const h = (...args) => {
        if (pred(...args)) {
          socket.off(event, h);
          // one payload (or a disconnect reason, whose `details` is usually undefined): unwrap it
          res(args.filter((a) => a !== undefined).length <= 1 ? args[0] : args);
        }
      };
      socket.on(event, h);
      if (event === "connected") {
        socket.once("connect_error", (e) => rej(new Error(`connect_error: ${e.message}`)));
        socket.once("error", (e) => rej(new Error(`error event before connected: ${JSON.stringify(e)}`)));
      }
    }),
  );
}

async function connected(from, token, opts) {
  const s = connect(from, token, opts);
  const info = await next(s, "connected");
  return { s, info };
}

/** `from` sends to user `to` over socket `s`; resolves with what `receiver` got. */
async function deliver(s, receiver, to, content) {
  const got = next(receiver, "message", (m) => m && m.content === content);
  const ack = await within(10_000, "send_message ack", s.emitWithAck("send_message", { to, content }));
  assert.equal(ack.ok, true, `send_message ack: ${JSON.stringify(ack)}`);
  const m = await got;
  assert.equal(m.id, ack.id);
  return m;
}

function closeAll() {
  for (const s of open) {
    try {
      s.io.opts.reconnection = false;
      s.close();
    } catch {
      /* ignore */
    }
  }
  open.clear();
}

// ---------------------------------------------------------------------------------------------

const tag = Math.random().toString(36).slice(2, 8);
const addrOf = {}; // node id -> a local address that nginx sends to that node
let addrA; // lands on node 0
let addrB; // lands on node 1
const stored = []; // message ids sent before the reload

describe("deploy recipe: nginx → 2 × im-server (PM2) + Redis + PostgreSQL", { timeout: 300_000 }, () => {
  before(() => {
    for (const [k, v] of Object.entries({ IM_NGINX_URL: NGINX, IM_USER_A: UA, IM_USER_B: UB, IM_RELOAD_CMD: RELOAD_CMD })) {
      if (!v) throw new Error(`${k} is not set (run deploy/test.sh)`);
    }
    assert.equal(NODE_IDS.length, 2, "IM_NODE_IDS names two nodes");
  });
  after(closeAll);

  it("nginx spreads clients over both nodes; sticky per client address", async () => {
    for (let i = 2; i < 60 && Object.keys(addrOf).length < NODE_IDS.length; i++) {
      const from = `127.0.0.${i}`;
      const h = await req(from, "GET", "/health");
      assert.equal(h.status, 200, JSON.stringify(h.body));
      if (!addrOf[h.body.node_id]) addrOf[h.body.node_id] = from;
    }
    assert.deepEqual(Object.keys(addrOf).sort(), [...NODE_IDS].sort(), `addresses per node: ${JSON.stringify(addrOf)}`);
    addrA = addrOf[NODE_IDS[0]];
    addrB = addrOf[NODE_IDS[1]];
    // sticky: the same address keeps landing on the same node
    for (const [node, from] of Object.entries(addrOf)) {
      for (let k = 0; k < 5; k++) assert.equal((await req(from, "GET", "/health")).body.node_id, node);
    }
  });

  it("/health through nginx: Redis on, both nodes listed, no config drift", async () => {
    const h = await req(addrA, "GET", "/health");
    assert.equal(h.body.status, "ok");
    assert.equal(h.body.redis, "ok", "REDIS_URL is set: redis must be ok");
    assert.ok(Array.isArray(h.body.nodes), `health lists nodes: ${JSON.stringify(h.body)}`);
    assert.deepEqual(h.body.nodes.map((n) => n.node_id).sort(), [...NODE_IDS].sort());
    assert.equal(h.body.config_drift, false);
  });

  it("websocket through nginx (Upgrade forwarded), X-Forwarded-For gives the client address, messages cross nodes", async () => {
    const a = await login(addrA, UA, PA);
    const b = await login(addrB, UB, PB);
    const { s: sa, info: ia } = await connected(addrA, a.token, { transports: ["websocket"] });
    const { s: sb } = await connected(addrB, b.token, { transports: ["websocket"] });
    assert.equal(ia.userId, a.id);
    assert.equal(sa.io.engine.transport.name, "websocket");
    // the server saw the client's own address, not nginx's (trust_proxy + X-Forwarded-For)
    const sess = await req(addrA, "GET", "/auth/session", { token: a.token });
    assert.equal(sess.status, 200, JSON.stringify(sess.body));
    const mine = sess.body.data.sockets.find((x) => x.id === ia.socketId);
    assert.ok(mine, `session lists socket ${ia.socketId}: ${JSON.stringify(sess.body.data.sockets)}`);
    assert.equal(mine.ip, addrA);
    const m1 = await deliver(sb, sa, a.id, `ws ${UB}→${UA} ${tag}`); // node B → node A
    const m2 = await deliver(sa, sb, b.id, `ws ${UA}→${UB} ${tag}`); // node A → node B
    stored.push(m1.id, m2.id);
    sa.close();
    sb.close();
  });

  it("GET /debug/transport through nginx: client address, trusted proxy, Upgrade forwarded, no hints", async () => {
    const t = await within(
      10_000,
      "GET /debug/transport with Upgrade headers",
      new Promise((res, rej) => {
        const u = new URL(`${NGINX}/debug/transport?expect=websocket&proxy_read_timeout=${READ_TIMEOUT}`);
        const r = http.request(
          {
            host: u.hostname,
            port: u.port,
            path: u.pathname + u.search,
            localAddress: addrA,
            agent: false,
            // what a browser's WebSocket handshake carries; the route answers JSON, no upgrade
            headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" },
          },
          (resp) => {
            let text = "";
            resp.setEncoding("utf8");
            resp.on("data", (d) => (text += d));
            resp.on("end", () => res({ status: resp.statusCode, body: JSON.parse(text) }));
          },
        );
        r.on("error", rej);
        r.end();
      }),
    );
    assert.equal(t.status, 200, JSON.stringify(t.body));
    const d = t.body.data;
    assert.equal(d.client_address, addrA, "the client's address, from nginx's X-Forwarded-For");
    assert.equal(d.peer_trusted_as_proxy, true);
    assert.equal(d.http_version, "HTTP/1.1", "proxy_http_version 1.1");
    assert.equal(d.websocket.upgrade_arrived, true, "Upgrade + Connection: upgrade passed through nginx");
    assert.ok(d.forwarded["x-forwarded-for"] && d.forwarded["x-real-ip"] && d.forwarded["x-forwarded-proto"], JSON.stringify(d.forwarded));
    assert.deepEqual(d.hints, [], "the server sees nothing misconfigured in the proxy (incl. the read timeout)");
  });

  it("HTTP long-polling through nginx (sticky), messages cross nodes", async () => {
    const a = await login(addrA, UA, PA);
    const b = await login(addrB, UB, PB);
    const { s: sa } = await connected(addrA, a.token, { transports: ["polling"] });
    const { s: sb } = await connected(addrB, b.token, { transports: ["polling"] });
    assert.equal(sa.io.engine.transport.name, "polling");
    assert.equal(sb.io.engine.transport.name, "polling");
    const m1 = await deliver(sa, sb, b.id, `poll ${UA}→${UB} ${tag}`);
    const m2 = await deliver(sb, sa, a.id, `poll ${UB}→${UA} ${tag}`);
    stored.push(m1.id, m2.id);
    // a polling session keeps working across several long-poll cycles
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(sa.connected && sb.connected, true);
    sa.close();
    sb.close();
  });

  it("default transports: polling, then the upgrade to websocket succeeds through nginx", async () => {
    const a = await login(addrA, UA, PA);
    const s = connect(addrA, a.token);
    const upgraded = within(
      WAIT,
      "engine upgrade to websocket",
      new Promise((res) => s.io.on("open", () => s.io.engine.once("upgrade", (t) => res(t.name)))),
    );
    await next(s, "connected");
    assert.equal(await upgraded, "websocket");
    s.close();
  });

  it("logout on one node kicks the token's sockets on the other (error TOKEN_REVOKED, then disconnect)", async () => {
    const a = await login(addrA, UA, PA);
    const { s: ws } = await connected(addrA, a.token, { transports: ["websocket"] });
    const { s: poll } = await connected(addrA, a.token, { transports: ["polling"] });
    const errs = [ws, poll].map((s) => next(s, "error", (e) => e && e.code === "TOKEN_REVOKED"));
    const discs = [ws, poll].map((s) => next(s, "disconnect"));
    const out = await req(addrB, "POST", "/auth/logout", { token: a.token }); // through node B
    assert.equal(out.status, 200, JSON.stringify(out.body));
    await Promise.all(errs);
    assert.deepEqual(await Promise.all(discs), ["io server disconnect", "io server disconnect"]);
    const v = await req(addrA, "GET", "/auth/validate", { token: a.token });
    assert.equal(v.status, 401);
    assert.equal(v.body.code, "TOKEN_REVOKED");
  });

  it("pm2 reload: clients reconnect by themselves, delivery works again, stored messages survive", async () => {
    const a = await login(addrA, UA, PA);
    const b = await login(addrB, UB, PB);
    const opts = { reconnection: true, reconnectionDelay: 500, reconnectionDelayMax: 2000 };
    const { s: sa, info: ia } = await connected(addrA, a.token, opts);
    const { s: sb, info: ib } = await connected(addrB, b.token, opts);
    const before = await deliver(sa, sb, b.id, `before reload ${tag}`);
    stored.push(before.id);

    // each side must see its socket drop and a fresh `connected` afterwards
    const back = [sa, sb].map((s, i) =>
      within(
        120_000,
        `client ${i} reconnecting after the reload`,
        new Promise((res) => {
          s.once("disconnect", (reason) => {
            s.once("connected", (info) => res({ reason, info }));
          });
        }),
      ),
    );
    const reload = await within(
      120_000,
      "pm2 reload",
      new Promise((res) => {
        const p = spawn("bash", ["-c", RELOAD_CMD], { stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        p.stdout.on("data", (d) => (out += d));
        p.stderr.on("data", (d) => (out += d));
        p.on("exit", (code) => res({ code, out }));
      }),
    );
    assert.equal(reload.code, 0, `pm2 reload failed:\n${reload.out}`);
    const [ra, rb] = await Promise.all(back);
    assert.equal(ra.reason, "transport close", "the server closed the socket on shutdown");
    assert.equal(rb.reason, "transport close");
    assert.notEqual(ra.info.socketId, ia.socketId);
    assert.notEqual(rb.info.socketId, ib.socketId);
    assert.equal(ra.info.userId, a.id, "same token accepted after the restart (shared DB and secret)");

    // after the reload each user is back on its own node (consistent hash), so this crosses nodes again
    const after1 = await deliver(sb, sa, a.id, `after reload ${tag}`);
    stored.push(after1.id);

    const hist = await req(addrB, "GET", `/api/messages?with=${a.id}&limit=100`, { token: b.token });
    assert.equal(hist.status, 200, JSON.stringify(hist.body));
    const list = hist.body.data.messages;
    assert.ok(Array.isArray(list), `data.messages is a list: ${JSON.stringify(hist.body.data).slice(0, 300)}`);
    const ids = new Set(list.map((m) => m.id));
    for (const id of stored) assert.ok(ids.has(id), `message ${id} stored before/after the reload is in the history`);
    sa.close();
    sb.close();
  });
});
