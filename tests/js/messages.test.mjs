// Contract §4 `send_message` (ack, delivery to the recipient's and the sender's other
// sockets, client_msg_id retries, validation) and §3 `GET /api/messages` (history paging).

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startServer,
  connectOk,
  closeAll,
  sleep,
  eventsOf,
  expectNothingMore,
  ISO_UTC,
} from "./harness.mjs";

const USERS = [
  { username: "alice", password: "alice-pass-1" },
  { username: "bob", password: "bob-pass-1" },
  { username: "carol", password: "carol-pass-1" },
  { username: "dave", password: "dave-pass-1" },
];

let server;
let U; // username -> {id, username, password, type}
const tokens = {};

before(async () => {
  server = await startServer({}, { users: USERS });
  U = server.users;
  for (const name of ["alice", "bob", "carol", "dave"]) tokens[name] = await server.loginToken(U[name]);
});
after(async () => {
  await server?.stop();
});

/** Connect `n` sockets for one user over one transport; each {socket, rec, info}. */
async function sockets(name, n, transport) {
  const out = [];
  try {
    for (let i = 0; i < n; i++)
      out.push(await connectOk(server, { transports: [transport], auth: { token: tokens[name] } }));
  } catch (e) {
    closeAll(out.map((s) => s.socket));
    throw e;
  }
  return out;
}

const send = (socket, payload) => socket.timeout(5000).emitWithAck("send_message", payload);

function assertMessage(msg, { id, from, to, content, created_at, client_msg_id }) {
  assert.deepEqual(
    {
      id: msg.id,
      from: msg.from,
      to: msg.to,
      content: msg.content,
      created_at: msg.created_at,
      client_msg_id: msg.client_msg_id ?? null,
    },
    { id, from, to, content, created_at, client_msg_id },
    JSON.stringify(msg),
  );
  for (const k of ["id", "from", "to", "content", "created_at", "client_msg_id"])
    assert.ok(k in msg, `message event has "${k}": ${JSON.stringify(msg)}`);
}

for (const transport of ["websocket", "polling"]) {
  describe(`send_message over ${transport}`, () => {
    test("ack {ok, id, created_at}; recipient's 2 sockets and sender's other socket get `message`; not the sending socket", async () => {
      const [a1, a2] = await sockets("alice", 2, transport);
      const [b1, b2] = await sockets("bob", 2, transport);
      const [c1] = await sockets("carol", 1, transport);
      try {
        const content = `hello bob over ${transport} — ünïcødé ✓`;
        const cmid = `cm-${transport}-${Date.now()}`;
        const t0 = Date.now();
        const ack = await send(a1.socket, { to: U.bob.id, content, client_msg_id: cmid });
        assert.equal(ack.ok, true, JSON.stringify(ack));
        assert.equal(typeof ack.id, "number", JSON.stringify(ack));
        assert.match(ack.created_at, ISO_UTC);
        assert.ok(Math.abs(Date.parse(ack.created_at) - t0) < 10_000, `created_at ${ack.created_at} is now`);
        assert.notEqual(ack.duplicate, true, "a first send is not a duplicate");

        const expected = {
          id: ack.id,
          from: U.alice.id,
          to: U.bob.id,
          content,
          created_at: ack.created_at,
          client_msg_id: cmid,
        };
        for (const [who, s] of [["bob#1", b1], ["bob#2", b2], ["alice#2 (sender's other socket)", a2]]) {
          const ev = await s.rec.waitFor("message", 3000).catch((e) => {
            throw new Error(`${who}: ${e.message}`);
          });
          assertMessage(ev.args[0], expected);
        }
        // The sending socket has the ack; it must not get its own message back, and nobody
        // outside the conversation gets it.
        await expectNothingMore([a1.rec, c1.rec], "message", 500);
        assert.equal(eventsOf(a1.rec, "message").length, 0, "sending socket got its own message");
        assert.equal(eventsOf(c1.rec, "message").length, 0, "a third user got the message");

        // A retry with the same client_msg_id: same id, duplicate:true, no second delivery.
        const retry = await send(a1.socket, { to: U.bob.id, content, client_msg_id: cmid });
        assert.equal(retry.ok, true, JSON.stringify(retry));
        assert.equal(retry.id, ack.id);
        assert.equal(retry.created_at, ack.created_at);
        assert.equal(retry.duplicate, true, JSON.stringify(retry));
        // The retry may come from the sender's other socket too (a reconnected tab).
        const retry2 = await send(a2.socket, { to: U.bob.id, content, client_msg_id: cmid });
        assert.equal(retry2.id, ack.id, JSON.stringify(retry2));
        assert.equal(retry2.duplicate, true, JSON.stringify(retry2));
        await sleep(500);
        for (const [who, s, n] of [["bob#1", b1, 1], ["bob#2", b2, 1], ["alice#2", a2, 1], ["alice#1", a1, 0], ["carol", c1, 0]])
          assert.equal(eventsOf(s.rec, "message").length, n, `${who} message count: ${JSON.stringify(eventsOf(s.rec, "message").map((e) => e.args))}`);

        // Without client_msg_id: a new message each time, client_msg_id null in the event.
        const plain = await send(a1.socket, { to: U.bob.id, content: "second" });
        assert.equal(plain.ok, true, JSON.stringify(plain));
        assert.ok(plain.id > ack.id, "ids grow");
        const ev = await b1.rec.waitFor("message", 3000, (m) => m.id === plain.id);
        assertMessage(ev.args[0], {
          id: plain.id,
          from: U.alice.id,
          to: U.bob.id,
          content: "second",
          created_at: plain.created_at,
          client_msg_id: null,
        });

        // Bob answers: alice's two sockets get it, bob's other socket too.
        const reply = await send(b2.socket, { to: U.alice.id, content: "hi alice" });
        assert.equal(reply.ok, true, JSON.stringify(reply));
        for (const s of [a1, a2, b1]) {
          const m = await s.rec.waitFor("message", 3000, (m) => m.id === reply.id);
          assert.equal(m.args[0].from, U.bob.id);
          assert.equal(m.args[0].to, U.alice.id);
        }
        await expectNothingMore(b2.rec, "message", 300, (m) => m.id === reply.id);
        assert.equal(eventsOf(b2.rec, "message", (m) => m.id === reply.id).length, 0);

        for (const s of [a1, a2, b1, b2, c1]) assert.ok(s.socket.connected);
      } finally {
        closeAll([a1, a2, b1, b2, c1].map((s) => s.socket));
      }
    });

    test("a message to a user with no socket is stored (ack ok) and shows up in their history", async () => {
      const [d1] = await sockets("dave", 1, transport);
      try {
        const content = `offline note ${transport}`;
        const ack = await send(d1.socket, { to: U.carol.id, content });
        assert.equal(ack.ok, true, JSON.stringify(ack));
        const h = await server.http("GET", `/api/messages?with=${U.dave.id}&limit=1`, { token: tokens.carol });
        assert.equal(h.status, 200, JSON.stringify(h.body));
        assert.equal(h.body.data.messages[0].id, ack.id);
        assert.equal(h.body.data.messages[0].content, content);
      } finally {
        closeAll(d1.socket);
      }
    });

    const okTo = () => U.bob.id;
    const badPayloads = [
      ["a string payload (not an object)", () => ["hello"], "BAD_REQUEST"],
      ["a number payload", () => [42], "BAD_REQUEST"],
      ["an array payload", () => [[{ to: okTo(), content: "x" }]], "BAD_REQUEST"],
      ["null", () => [null], "BAD_REQUEST"],
      ["no payload at all", () => [], "BAD_REQUEST"],
      ["an empty object", () => [{}], "BAD_REQUEST"],
      ["missing to", () => [{ content: "x" }], "BAD_REQUEST"],
      ["missing content", () => [{ to: okTo() }], "BAD_REQUEST"],
      ["to: a non-numeric string", () => [{ to: "bob", content: "x" }], "BAD_REQUEST"],
      ["to: a boolean", () => [{ to: true, content: "x" }], "BAD_REQUEST"],
      ["to: an object", () => [{ to: { id: okTo() }, content: "x" }], "BAD_REQUEST"],
      ["to: null", () => [{ to: null, content: "x" }], "BAD_REQUEST"],
      ["content: a number", () => [{ to: okTo(), content: 42 }], "BAD_REQUEST"],
      ["content: an object", () => [{ to: okTo(), content: { text: "x" } }], "BAD_REQUEST"],
      ["content: an array", () => [{ to: okTo(), content: ["x"] }], "BAD_REQUEST"],
      ["content: null", () => [{ to: okTo(), content: null }], "BAD_REQUEST"],
      ["client_msg_id: an object", () => [{ to: okTo(), content: "x", client_msg_id: { a: 1 } }], "BAD_REQUEST"],
      ["empty content", () => [{ to: okTo(), content: "" }], "BAD_REQUEST"],
      ["whitespace-only content", () => [{ to: okTo(), content: "  \n\t  " }], "BAD_REQUEST"],
      ["70,000-char content (> 65,536 bytes)", () => [{ to: okTo(), content: "x".repeat(70_000) }], "BAD_REQUEST"],
      ["65,537-byte content", () => [{ to: okTo(), content: "x".repeat(65_537) }], "BAD_REQUEST"],
      ["33,000 two-byte chars (66,000 bytes; the limit is bytes, not chars)", () => [{ to: okTo(), content: "é".repeat(33_000) }], "BAD_REQUEST"],
      ["an unknown recipient", () => [{ to: 987_654, content: "anyone there?" }], "USER_NOT_FOUND"],
    ];

    test("bad payloads → ack {ok:false, code, message}; nothing delivered; socket stays connected", async () => {
      const [a1] = await sockets("alice", 1, transport);
      const [b1] = await sockets("bob", 1, transport);
      try {
        const failures = [];
        for (const [label, args, code] of badPayloads) {
          let ack;
          try {
            ack = await a1.socket.timeout(5000).emitWithAck("send_message", ...args());
          } catch (e) {
            failures.push(`${label}: no ack (${e.message}); connected=${a1.socket.connected}`);
            if (!a1.socket.connected) break;
            continue;
          }
          const ok =
            ack && ack.ok === false && ack.code === code && typeof ack.message === "string" && ack.message.length > 0;
          if (!ok) failures.push(`${label}: expected {ok:false, code:${code}, message}, got ${JSON.stringify(ack)?.slice(0, 300)}`);
          if (!a1.socket.connected) {
            failures.push(`${label}: socket disconnected`);
            break;
          }
        }
        assert.deepEqual(failures, []);
        await sleep(300);
        assert.ok(a1.socket.connected, "sender still connected");
        assert.equal(eventsOf(b1.rec, "message").length, 0, JSON.stringify(eventsOf(b1.rec, "message").map((e) => e.args[0].content?.slice?.(0, 40))));
        assert.deepEqual(a1.rec.names(), ["connect", "connected"]);

        // The same socket still sends; the limit is inclusive (65,536 bytes, ASCII and 2-byte).
        for (const content of ["x".repeat(65_536), "é".repeat(32_768), " still here "]) {
          const ack = await send(a1.socket, { to: U.bob.id, content });
          assert.equal(ack.ok, true, `${Buffer.byteLength(content)} bytes: ${JSON.stringify(ack).slice(0, 300)}`);
          const ev = await b1.rec.waitFor("message", 5000, (m) => m.id === ack.id);
          assert.equal(ev.args[0].content, content);
        }
      } finally {
        closeAll(a1.socket, b1.socket);
      }
    });
  });
}

describe("GET /api/messages", () => {
  // A fresh pair per run of this block so counts are exact.
  let x, y, z; // tokens
  let X, Y, Z; // users
  let srv;

  before(async () => {
    srv = await startServer({}, {
      users: [
        { username: "xena", password: "xena-pass-1" },
        { username: "yuri", password: "yuri-pass-1" },
        { username: "zoe", password: "zoe-pass-1" },
      ],
    });
    ({ xena: X, yuri: Y, zoe: Z } = srv.users);
    x = await srv.loginToken(X);
    y = await srv.loginToken(Y);
    z = await srv.loginToken(Z);
  });
  after(async () => {
    await srv?.stop();
  });

  test("newest first, paged with limit/before/next_before, only the caller's conversation", async () => {
    const xs = await connectOk(srv, { auth: { token: x } });
    const ys = await connectOk(srv, { auth: { token: y } });
    const zs = await connectOk(srv, { auth: { token: z } });
    try {
      // x<->y conversation: 7 messages both ways; noise in x<->z and y<->z.
      const plan = [
        [xs, Y, "xy-1"],
        [ys, X, "xy-2"],
        [xs, Z, "noise-xz-1"],
        [xs, Y, "xy-3"],
        [zs, Y, "noise-zy-1"],
        [xs, Y, "xy-4"],
        [ys, X, "xy-5"],
        [zs, X, "noise-zx-1"],
        [xs, Y, "xy-6"],
        [ys, X, "xy-7"],
      ];
      const sent = [];
      for (const [s, to, content] of plan) {
        const ack = await s.socket.timeout(5000).emitWithAck("send_message", { to: to.id, content });
        assert.equal(ack.ok, true, JSON.stringify(ack));
        sent.push({ id: ack.id, content, created_at: ack.created_at, to: to.id });
      }
      const conv = sent.filter((m) => m.content.startsWith("xy-")).reverse(); // newest first
      assert.equal(conv.length, 7);

      // Page through as x, 3 at a time.
      const pages = [];
      let before;
      for (let i = 0; i < 5; i++) {
        const q = `/api/messages?with=${Y.id}&limit=3${before ? `&before=${before}` : ""}`;
        const r = await srv.http("GET", q, { token: x });
        assert.equal(r.status, 200, `${q}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.success, true);
        const { messages, next_before } = r.body.data;
        assert.ok(Array.isArray(messages), JSON.stringify(r.body));
        pages.push(messages);
        if (next_before === null || next_before === undefined) break;
        assert.equal(typeof next_before, "number");
        before = next_before;
      }
      assert.deepEqual(pages.map((p) => p.length), [3, 3, 1], "pages of 3, 3, 1 then no next_before");
      const all = pages.flat();
      assert.deepEqual(all.map((m) => m.content), conv.map((m) => m.content), "newest first, no gaps or repeats");
      assert.deepEqual(all.map((m) => m.id), conv.map((m) => m.id));
      for (let i = 1; i < all.length; i++) assert.ok(all[i - 1].id > all[i].id, "ids strictly decreasing");
      for (const m of all) {
        const s = conv.find((c) => c.id === m.id);
        assert.equal(m.created_at, s.created_at, "same created_at as the ack");
        assert.match(m.created_at, ISO_UTC);
        assert.ok(
          (m.from === X.id && m.to === Y.id) || (m.from === Y.id && m.to === X.id),
          `only x<->y: ${JSON.stringify(m)}`,
        );
        assert.ok("client_msg_id" in m, JSON.stringify(m));
      }

      // The other side sees the same conversation.
      const fromY = await srv.http("GET", `/api/messages?with=${X.id}&limit=50`, { token: y });
      assert.equal(fromY.status, 200);
      assert.deepEqual(fromY.body.data.messages.map((m) => m.id), conv.map((m) => m.id));
      assert.ok(fromY.body.data.next_before == null, "no next page when everything fit");

      // A third user sees only their own conversations: z<->x has exactly 2 messages.
      const zx = await srv.http("GET", `/api/messages?with=${X.id}`, { token: z });
      assert.equal(zx.status, 200);
      assert.deepEqual(zx.body.data.messages.map((m) => m.content), ["noise-zx-1", "noise-xz-1"]);
      // Asking about y as z gives z's own conversation with y (one message), never x's.
      const zy = await srv.http("GET", `/api/messages?with=${Y.id}`, { token: z });
      assert.deepEqual(zy.body.data.messages.map((m) => m.content), ["noise-zy-1"]);

      // `before` alone: strictly older than that id.
      const mid = conv[3].id;
      const older = await srv.http("GET", `/api/messages?with=${Y.id}&before=${mid}`, { token: x });
      assert.deepEqual(older.body.data.messages.map((m) => m.id), conv.slice(4).map((m) => m.id));

      // Nobody ever wrote to kefu1: an empty page, no next_before.
      const none = await srv.http("GET", `/api/messages?with=2`, { token: y });
      assert.equal(none.status, 200, JSON.stringify(none.body));
      assert.deepEqual(none.body.data.messages, []);
      assert.ok(none.body.data.next_before == null);
    } finally {
      closeAll(xs.socket, ys.socket, zs.socket);
    }
  });

  test("without a Bearer token → 401 TOKEN_MISSING; without `with` → 400 BAD_REQUEST", async () => {
    const r = await srv.http("GET", `/api/messages?with=${Y.id}`);
    assert.equal(r.status, 401, JSON.stringify(r.body));
    assert.equal(r.body.success, false);
    assert.equal(r.body.code, "TOKEN_MISSING");
    const bad = await srv.http("GET", `/api/messages`, { token: x });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.equal(bad.body.code, "BAD_REQUEST");
    assert.match(bad.body.message, /with/);
  });
});
