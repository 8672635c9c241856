// Contract §4 ("a message is never dropped silently") across a Redis outage: a message sent on
// node A while Redis is down is stored and acked, but node B cannot hear it. When Redis is back,
// node B closes the recipient's connection at the transport, and an unchanged socket.io-client
// (default reconnection) reconnects by itself; `connected.lastMessageId` and `messages:sync`
// give it exactly the message it missed. A user with nothing in the outage keeps its socket.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { io as ioV4 } from "socket.io-client";
import { startServer, connectOk, closeAll, record, startRedis, eventually, KEFU, ADMIN } from "./harness.mjs";

let redis, a, b, dir, U;

before(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), "im-redis-outage-"));
  const env = (node) => ({ DATABASE_URL: `sqlite://${dir}/shared.db?mode=rwc`, REDIS_URL: redis.url, IM_SERVER__NODE_ID: node });
  a = await startServer(env("node-a"), { users: [{ username: "bystander", password: "bystander-1" }] });
  U = a.users;
  b = await startServer(env("node-b"));
});
after(async () => {
  await a?.stop();
  await b?.stop();
  redis?.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("a socket that missed a message during a Redis outage reconnects by itself and syncs it", async () => {
  const sender = await connectOk(a, { auth: { token: await a.loginToken(ADMIN) } });
  // The README's client: on every `connected` it syncs from where its previous connection
  // began; socket.io-client's default reconnection does the rest.
  const kefu = ioV4(b.im, { forceNew: true, transports: ["websocket"], auth: { token: await b.loginToken(KEFU) }, reconnectionDelay: 200 });
  const rec = record(kefu);
  const synced = [];
  let from = null;
  kefu.on("connected", async (info) => {
    if (from !== null) {
      for (let after = from, more = true; more; ) {
        const page = await kefu.timeout(5000).emitWithAck("messages:sync", { after_id: after, limit: 500 });
        page.messages.forEach((m) => ((after = m.id), synced.push(m)));
        more = page.more;
      }
    }
    from = info.lastMessageId ?? 0;
  });
  const bystander = await connectOk(b, { transports: ["websocket"], auth: { token: await b.loginToken({ username: "bystander", password: "bystander-1" }) } });
  try {
    await rec.waitFor("connected");
    await redis.stop();
    await eventually(async () => (await b.http("GET", "/health")).status === 503, 20000, "node B sees the outage");
    const ack = await sender.socket.timeout(5000).emitWithAck("send_message", { to: KEFU.id, content: "while Redis was away" });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    await redis.restart();

    const gone = await rec.waitFor("disconnect", 20000);
    assert.equal(gone.args[0], "transport close", "a transport close, which socket.io-client reconnects from");
    await eventually(() => synced.some((m) => m.id === ack.id), 15000, "the missed message, synced after the reconnect");
    assert.equal(synced.find((m) => m.id === ack.id).content, "while Redis was away");
    assert.ok(kefu.connected, "reconnected without the app doing anything");

    assert.ok(bystander.socket.connected, "a user with nothing in the outage keeps its socket");
    assert.ok(!bystander.rec.names().includes("disconnect"), JSON.stringify(bystander.rec.names()));
    const metrics = (await b.http("GET", "/metrics")).body;
    assert.match(metrics, /im_kicks_total\{reason="CLUSTER_RESYNC"\} [1-9]/);
  } finally {
    closeAll(sender.socket, kefu, bystander.socket);
  }
});
