// Contract §10 across two nodes with Redis: rooms a bridge reply joins on one node receive
// emits that a bridge reply on the other node sends, and to_users reaches a user's sockets on
// every node. Each node calls the backend with its own X-Im-Node.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, connectOk, closeAll, expectNothingMore, startRedis } from "./harness.mjs";
import { startBackend } from "./bridge-backend.mjs";

const SECRET = "bridge-cluster-secret-0123456789abcd";
let redis, backend, a, b, dir, U;

before(async () => {
  redis = await startRedis();
  backend = await startBackend({ secret: SECRET });
  dir = mkdtempSync(join(tmpdir(), "im-bridge-cluster-"));
  const env = (node) => ({
    DATABASE_URL: `sqlite://${dir}/shared.db?mode=rwc`,
    REDIS_URL: redis.url,
    IM_SERVER__NODE_ID: node,
    IM_BRIDGE__URL: backend.url,
    IM_BRIDGE__SECRET: SECRET,
  });
  a = await startServer(env("node-a"), {
    users: [
      { username: "ann", password: "ann-pass-1" },
      { username: "ben", password: "ben-pass-1" },
    ],
  });
  U = a.users;
  b = await startServer(env("node-b"));
});
after(async () => {
  await a?.stop();
  await b?.stop();
  await backend?.close();
  redis?.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
  assert.equal(backend.stats.badSignatures, 0);
});

const ack = (socket, event, ...args) => socket.timeout(5000).emitWithAck(event, ...args);

test("a room joined through the bridge on node A gets an emit a bridge reply sends on node B; to_users crosses nodes", async () => {
  const tokAnn = await a.loginToken(U.ann);
  const tokBen = await a.loginToken(U.ben);
  const ann = await connectOk(a, { transports: ["websocket"], auth: { token: tokAnn } });
  const ben = await connectOk(b, { transports: ["websocket"], auth: { token: tokBen } });
  const ben2 = await connectOk(a, { transports: ["polling"], auth: { token: tokBen } });
  try {
    assert.deepEqual(await ack(ann.socket, "room:join", { room: "team" }), { ok: true, joined: "team" });
    assert.equal((await ack(ben.socket, "room:say", { room: "team", text: "from B" })).ok, true);
    assert.deepEqual((await ann.rec.waitFor("room:said", 5000)).args, [{ from: U.ben.id, text: "from B" }]);
    await expectNothingMore(ben.rec, "room:said", 300);

    await ack(ann.socket, "user:poke", { to: U.ben.id });
    for (const s of [ben, ben2]) assert.deepEqual((await s.rec.waitFor("poked", 5000)).args, [{ by: U.ann.id }]);

    const nodes = new Set(backend.calls.filter((c) => c.type === "event").map((c) => c.headers["x-im-node"]));
    assert.deepEqual([...nodes].sort(), ["node-a", "node-b"]);
  } finally {
    closeAll(ann.socket, ben.socket, ben2.socket);
  }
});
