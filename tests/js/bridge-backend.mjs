// A real app backend for the bridge (contract §10), on node:http: it verifies EVERY call's
// X-Im-Signature (HMAC-SHA256 over "<timestamp>.<body>", constant-time compare, timestamp
// within 5 minutes) and answers by event name, so tests can drive each reply shape and each
// failure mode. Every call is recorded ({type, event, body, headers, signatureOk, at}).
//
// In-process: `const b = await startBackend({secret})` → {url, calls, held, release(), close()}.
// Standalone (bench/bridge.sh): `node bridge-backend.mjs --trivial --port 4000 --secret S` answers
// every signed call (and the bench's unsigned direct probes) with `{"ack":{"ok":true}}`.

import { createServer } from "node:http";
import { createHmac, timingSafeEqual } from "node:crypto";

export function verify(secret, headers, raw) {
  const ts = headers["x-im-timestamp"];
  const sig = headers["x-im-signature"] ?? "";
  if (!ts || !/^\d+$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > 300) return false;
  const want = Buffer.from(`sha256=${createHmac("sha256", secret).update(`${ts}.`).update(raw).digest("hex")}`);
  const got = Buffer.from(sig);
  return got.length === want.length && timingSafeEqual(got, want);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function startBackend({ secret, port = 0, trivial = false } = {}) {
  const calls = [];
  /** Knobs a test may turn: the status `disconnect` calls get. */
  const mode = { disconnectStatus: 200 };
  const gates = new Map(); // key -> resolve
  const waiting = new Map(); // key -> promise
  const inflight = new Map(); // socket_id -> count
  const stats = { maxInflightBySocket: new Map(), maxInflight: 0, inflight: 0, badSignatures: 0 };
  const gate = (key) => {
    if (!waiting.has(key)) waiting.set(key, new Promise((res) => gates.set(key, res)));
    return waiting.get(key);
  };

  async function answer(body) {
    if (body.type === "connect") {
      const a = body.handshake?.auth ?? {};
      if (a.refuse) return [200, { disconnect: { code: a.refuse, message: "the backend says no" } }];
      if (a.status) return [a.status, { code: a.code, message: a.message }];
      return [200, { join: a.rooms ?? [], data: { greeting: `hello ${body.user.username}`, plan: "gold" } }];
    }
    if (body.type === "disconnect") return [mode.disconnectStatus, {}];
    const [arg] = body.args;
    switch (body.event) {
      case "echo":
      case "chat:send":
      case "joinRoom":
        return [200, { ack: { ok: true, event: body.event, args: body.args, user: body.user, rooms: body.rooms } }];
      case "noack":
        return [200, {}];
      case "room:join":
        return [200, { join: [arg.room], ack: { ok: true, joined: arg.room } }];
      case "room:leave":
        return [200, { leave: [arg.room], ack: { ok: true } }];
      case "room:say":
        return [200, {
          emit: [{ event: "room:said", data: { from: body.user.id, text: arg.text }, rooms: [arg.room], except_sender: !!arg.exceptSender }],
          ack: { ok: true },
        }];
      case "user:poke":
        return [200, { emit: [{ event: "poked", data: { by: body.user.id }, to_users: [arg.to] }] }];
      case "self:ping":
        return [200, { emit: [{ event: "pong:app", data: { n: arg.n } }] }];
      case "emit:reserved":
        return [200, { emit: [{ event: "connected", data: { forged: true } }, { event: "ok:event", data: 1 }] }];
      case "join:reserved":
        return [200, { join: ["user:999", "type:admin", "token:abc", "allowed"], ack: { ok: true } }];
      case "leave:reserved":
        return [200, { leave: ["user:" + body.user.id, "token:" + "x"], ack: { ok: true } }];
      case "kick":
        return [200, { ack: { ok: true, bye: true }, disconnect: { code: arg?.code ?? "NOT_A_CODE", message: "the backend ended this session" } }];
      case "hold":
        await gate(arg.key);
        return [200, { ack: { ok: true, n: arg.n } }];
      case "seq":
        return [200, { ack: { ok: true, n: arg.n } }];
      case "fail:status":
        return [arg.status, arg.body ?? { code: arg.code, message: arg.message }];
      case "fail:notjson":
        return [200, "this is not json"];
      case "fail:array":
        return [200, [1, 2, 3]];
      case "fail:slow":
        await sleep(arg.ms);
        return [200, { ack: { ok: true, late: true } }];
      default:
        return [200, { ack: { ok: true, event: body.event } }];
    }
  }

  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const raw = Buffer.concat(chunks);
      const signatureOk = secret === undefined ? true : verify(secret, req.headers, raw);
      // The bench's direct calls (loadgen, for the backend's own time) carry no signature.
      const probe = trivial && !req.headers["x-im-signature"];
      if (trivial && (probe || signatureOk)) {
        res.writeHead(200, { "content-type": "application/json" });
        return res.end('{"ack":{"ok":true}}');
      }
      let body;
      try {
        body = JSON.parse(raw.toString("utf8"));
      } catch {
        body = null;
      }
      const call = { type: body?.type, event: body?.event, body, headers: req.headers, signatureOk, at: Date.now() };
      calls.push(call);
      if (!signatureOk) {
        stats.badSignatures++;
        res.writeHead(401, { "content-type": "application/json" });
        return res.end(JSON.stringify({ code: "FORBIDDEN", message: "bad signature" }));
      }
      const sid = body.socket_id;
      inflight.set(sid, (inflight.get(sid) ?? 0) + 1);
      stats.inflight++;
      stats.maxInflightBySocket.set(sid, Math.max(stats.maxInflightBySocket.get(sid) ?? 0, inflight.get(sid)));
      stats.maxInflight = Math.max(stats.maxInflight, stats.inflight);
      let status, reply;
      try {
        [status, reply] = await answer(body);
      } finally {
        inflight.set(sid, inflight.get(sid) - 1);
        stats.inflight--;
      }
      const text = typeof reply === "string" ? reply : JSON.stringify(reply);
      res.writeHead(status, { "content-type": typeof reply === "string" ? "text/plain" : "application/json" });
      res.end(text);
    });
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}/im/bridge`;
  return {
    url,
    calls,
    stats,
    mode,
    /** Let every `hold` event with this key answer. */
    release(key) {
      gate(key);
      gates.get(key)();
    },
    callsOf: (type, event) => calls.filter((c) => c.type === type && (event === undefined || c.event === event)),
    close: () =>
      new Promise((r) => {
        for (const k of gates.keys()) gates.get(k)();
        server.closeAllConnections?.();
        server.close(() => r());
      }),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : dflt;
  };
  const b = await startBackend({ secret: arg("secret"), port: Number(arg("port", 4000)), trivial: process.argv.includes("--trivial") });
  console.log(`bridge backend listening on ${b.url}`);
}
