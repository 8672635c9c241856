// Contract §4: nothing acknowledged is dropped silently. Bursts to one socket and acks of a
// burst from one socket, over websocket and polling, counted end to end: each message is
// delivered, or its socket was disconnected and `messages:sync` returns it.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, connectOk, closeAll, eventually, eventsOf } from "./harness.mjs";

const USERS = [
  { username: "alice", password: "alice-pass-1" },
  { username: "bob", password: "bob-pass-1" },
];

let server;
let U;
const tokens = {};

before(async () => {
  server = await startServer({}, { users: USERS });
  U = server.users;
  for (const name of ["alice", "bob"]) tokens[name] = await server.loginToken(U[name]);
});
after(async () => {
  await server?.stop();
});

const connect = (name, transport) =>
  connectOk(server, { transports: [transport], auth: { token: tokens[name] } });

/** `n` acked send_message emitted at once; every ack must be ok. Returns the ids in order. */
async function burst(socket, to, n, tag) {
  const acks = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      socket.timeout(60_000).emitWithAck("send_message", { to, content: `${tag} ${i}` }),
    ),
  );
  for (const a of acks) assert.equal(a.ok, true, JSON.stringify(a));
  const ids = acks.map((a) => a.id);
  assert.equal(new Set(ids).size, n, "one stored message per send");
  return ids;
}

/** Every `messages:sync` page after `afterId`, oldest first. */
async function syncAll(socket, afterId) {
  const out = [];
  for (let page = 0; page < 100; page++) {
    const r = await socket.timeout(10_000).emitWithAck("messages:sync", { after_id: afterId, limit: 500 });
    assert.equal(r.ok, true, JSON.stringify(r));
    for (const m of r.messages) {
      assert.ok(m.id > afterId, "oldest first");
      afterId = m.id;
      out.push(m);
    }
    if (!r.more) return out;
  }
  throw new Error("messages:sync never said more: false");
}

/**
 * Every acked id reached `rec`'s socket, or that socket was disconnected and a new socket's
 * `messages:sync` from the last id it saw returns the rest. Returns whether it was cut off.
 */
async function assertNothingLost(rec, acked, transport) {
  const want = new Set(acked);
  const seen = () => new Set(eventsOf(rec, "message").map((e) => e.args[0].id));
  await eventually(
    () => [...want].every((id) => seen().has(id)) || rec.names().includes("disconnect"),
    30_000,
    `all ${acked.length} messages or a disconnect`,
  );
  const got = seen();
  if ([...want].every((id) => got.has(id))) return false;
  const last = Math.max(0, ...[...got].filter((id) => want.has(id)));
  const again = await connect("bob", transport);
  try {
    for (const m of await syncAll(again.socket, last)) got.add(m.id);
  } finally {
    closeAll(again.socket);
  }
  assert.deepEqual([...want].filter((id) => !got.has(id)), [], "missing after messages:sync");
  return true;
}

for (const transport of ["websocket", "polling"]) {
  describe(`burst to one ${transport} recipient`, () => {
    test("300 send_message at once: all stored, acked and delivered", async () => {
      const sender = await connect("alice", "websocket");
      const recipient = await connect("bob", transport);
      try {
        const acked = await burst(sender.socket, U.bob.id, 300, `to ${transport}`);
        const cutOff = await assertNothingLost(recipient.rec, acked, transport);
        // With the default bounds a client that reads is never cut off.
        assert.equal(cutOff, false, "a reading recipient stays connected");
        assert.equal(recipient.socket.connected, true);
        // The ids the recipient got are the stored ones, in order.
        const ids = eventsOf(recipient.rec, "message").map((e) => e.args[0].id);
        assert.deepEqual([...ids].sort((a, b) => a - b), [...acked].sort((a, b) => a - b));
      } finally {
        closeAll(sender.socket, recipient.socket);
      }
    });
  });
}

describe("acks of a burst from one polling socket", () => {
  test("400 acked send_message over polling: 400 acks, 400 stored, 400 delivered", async () => {
    const sender = await connect("alice", "polling");
    const recipient = await connect("bob", "websocket");
    const before = sender.info.lastMessageId ?? 0;
    try {
      const acked = await burst(sender.socket, U.bob.id, 400, "polling burst");
      assert.equal(sender.socket.connected, true);
      await assertNothingLost(recipient.rec, acked, "websocket");
      // Stored exactly once each: the sync after the burst's start is the burst.
      const synced = (await syncAll(sender.socket, before)).map((m) => m.id);
      assert.deepEqual(synced, [...acked].sort((a, b) => a - b));
      // lastMessageId of a new socket is where the burst ended.
      const again = await connect("alice", "polling");
      assert.equal(again.info.lastMessageId, Math.max(...acked));
      closeAll(again.socket);
    } finally {
      closeAll(sender.socket, recipient.socket);
    }
  });
});
