// Contract §9: im-server in front of an existing backend. The backend (backend.mjs: jsonwebtoken
// signing, raw tokens in MariaDB `user_tokens`, string user ids) issues and revokes tokens;
// socket.io-client 4 connects unchanged over websocket and polling.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, connectOk, connectRefusedLegacy, closeAll, http, eventsOf, JWT_SECRET } from "./harness.mjs";
import { startBackend } from "./backend.mjs";

const API_KEY = "js-external-key-0123456789";
const USERS = [
  { id: "kefu_001", username: "admin", type: "kefu", displayName: "系统管理员" },
  { id: "kefu_002", username: "kefu1", type: "kefu", displayName: "客服001" },
];

let backend;
let server;

before(async () => {
  backend = await startBackend(JWT_SECRET, USERS);
  server = await startServer({
    IM_SERVER__API_KEY: API_KEY,
    IM_AUTH__CACHE_TTL_SECS: "0",
    IM_EXTERNAL__URL: backend.readerUrl,
    IM_EXTERNAL__RECHECK_SECS: "1",
    IM_EXTERNAL__TOKENS__TABLE: "user_tokens",
    IM_EXTERNAL__TOKENS__REVOKED: "is_revoked",
    IM_EXTERNAL__TOKENS__EXPIRES_AT: "expires_at",
    IM_EXTERNAL__USERS__DISPLAY_NAME: "display_name",
    IM_EXTERNAL__USERS__USER_TYPE: "user_type",
    IM_EXTERNAL__USERS__ACTIVE: "is_active",
  });
});
after(async () => {
  await server?.stop();
  await backend?.close();
});

const refusalCode = (rec) => eventsOf(rec, "error")[0]?.args[0]?.code;

for (const transport of ["websocket", "polling"]) {
  describe(`over ${transport}`, () => {
    test("a token from the backend's login is accepted, its string id kept", async () => {
      const token = await backend.login("kefu_001");
      const a = await connectOk(server, { transports: [transport], auth: { token } });
      try {
        assert.equal(a.info.userId, "kefu_001");
        assert.equal(a.info.displayName, "系统管理员");
        assert.equal(a.info.userType, "kefu");
      } finally {
        closeAll(a.socket);
      }
    });

    test("refusals: no row, revoked, disabled user", async () => {
      const stale = backend.signOnly("kefu_001");
      let r = await connectRefusedLegacy(server, { transports: [transport], auth: { token: stale } });
      assert.equal(refusalCode(r.rec), "TOKEN_NOT_FOUND");
      const revoked = await backend.login("kefu_001");
      await backend.logout(revoked);
      r = await connectRefusedLegacy(server, { transports: [transport], auth: { token: revoked } });
      assert.equal(refusalCode(r.rec), "TOKEN_REVOKED");
      const t = await backend.login("kefu_002");
      await backend.setActive("kefu_002", false);
      try {
        r = await connectRefusedLegacy(server, { transports: [transport], auth: { token: t } });
        assert.equal(refusalCode(r.rec), "USER_DISABLED");
      } finally {
        await backend.setActive("kefu_002", true);
      }
    });

    test("the backend's logout reaches the connected socket within recheck_secs", async () => {
      const token = await backend.login("kefu_002");
      const b = await connectOk(server, { transports: [transport], auth: { token } });
      try {
        await backend.logout(token);
        const err = await b.rec.waitFor("error", 8000);
        assert.equal(err.args[0].code, "TOKEN_REVOKED");
        await b.rec.waitFor("disconnect", 5000);
      } finally {
        closeAll(b.socket);
      }
    });

    test("messages between mapped users carry string ids; history by string id", async () => {
      const ta = await backend.login("kefu_001");
      const tb = await backend.login("kefu_002");
      const a = await connectOk(server, { transports: [transport], auth: { token: ta } });
      const b = await connectOk(server, { transports: [transport], auth: { token: tb } });
      try {
        const ack = await a.socket.timeout(5000).emitWithAck("send_message", { to: "kefu_002", content: `hi ${transport}` });
        assert.equal(ack.ok, true, JSON.stringify(ack));
        const m = await b.rec.waitFor("message", 5000, (x) => x.content === `hi ${transport}`);
        assert.deepEqual([m.args[0].from, m.args[0].to], ["kefu_001", "kefu_002"]);
        const h = await http(server.url, "GET", "/api/messages?with=kefu_002", { token: ta });
        assert.equal(h.status, 200);
        assert.equal(h.body.data.messages[0].from, "kefu_001");
        const online = await http(server.url, "GET", "/auth/online?user_type=kefu", { token: ta });
        assert.deepEqual(online.body.data.users.map((u) => u.id).sort(), ["kefu_001", "kefu_002"]);
      } finally {
        closeAll(a.socket, b.socket);
      }
    });
  });
}

test("login and logout belong to the backend: 403 FORBIDDEN", async () => {
  const r = await http(server.url, "POST", "/auth/login", { body: { username: "admin", password: "admin123" } });
  assert.equal(r.status, 403);
  assert.equal(r.body.code, "FORBIDDEN");
  const t = await backend.login("kefu_001");
  const o = await http(server.url, "POST", "/auth/logout", { token: t });
  assert.equal(o.status, 403);
});

test("/api/revoke by user id kicks at once", async () => {
  const t = await backend.login("kefu_001");
  const a = await connectOk(server, { transports: ["websocket"], auth: { token: t } });
  const r = await http(server.url, "POST", "/api/revoke", { body: { user_ids: ["kefu_001"] }, headers: { "x-api-key": API_KEY } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.data.disconnected_sockets, 1);
  const err = await a.rec.waitFor("error", 3000);
  assert.equal(err.args[0].code, "TOKEN_REVOKED");
  closeAll(a.socket);
});

test("im-server's account cannot write the backend's tables; /health names them", async () => {
  const h = await http(server.url, "GET", "/health");
  assert.equal(h.body.external, "ok");
  const mysql = (await import("mysql2/promise")).default;
  const u = new URL(backend.readerUrl);
  const c = await mysql.createConnection({ host: u.hostname, port: Number(u.port), user: u.username, password: u.password, database: u.pathname.slice(1) });
  try {
    await assert.rejects(c.execute("UPDATE user_tokens SET is_revoked = 1"), /denied/);
  } finally {
    await c.end();
  }
});
