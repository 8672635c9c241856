// Shared harness for the JS suite: start/stop a real im-server, log in, sign JWTs,
// record socket events, and bounded waits so a run always ends by itself.

import { execFile, spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { createServer as createTcpServer, connect as tcpConnect } from "node:net";
import { io as ioV4 } from "socket.io-client";
import { http, startImServer } from "../lib/server.mjs";

export { http };

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

/** socket.io-client 2.5.0 (Engine.IO v3), installed under an npm alias. */
export const ioV2 = require("socket.io-client-v2");

export const SERVER_BIN = resolve(
  here,
  process.env.IM_SERVER_BIN || "../../target/debug/im-server",
);
export const JWT_SECRET = "js-suite-secret-0123456789abcdefghij";
export const ADMIN = { username: "admin", password: "admin123", id: 1, type: "admin" };
export const KEFU = { username: "kefu1", password: "kefu123", id: 2, type: "kefu" };

/**
 * Start `im-server serve` in a fresh temp dir with its own SQLite file (tests/lib/server.mjs).
 * `env` adds or overrides variables (a value of `undefined` removes one).
 * `users` (optional): extra users created with `im-server user add` (same DATABASE_URL)
 * before the server starts; admin and kefu1 are then created first so ADMIN/KEFU keep ids 1
 * and 2 (the development seed only runs on an empty users table). Each entry is
 * `{username, password, type?, displayName?}`; `server.users[username]` gets its id.
 * Resolves once the "listening on" line is printed.
 */
export async function startServer(env = {}, { users = [] } = {}) {
  const created = {};
  const seedUsers = async ({ dir, env: fullEnv }) => {
    const seeds = [
      { ...ADMIN, displayName: "Administrator" },
      { ...KEFU, displayName: "Support agent 1" },
    ];
    for (const u of [...seeds, ...users]) {
      const made = await addUser({ cwd: dir, env: fullEnv }, u);
      created[u.username] = made;
    }
    if (created.admin.id !== ADMIN.id || created.kefu1.id !== KEFU.id)
      throw new Error(`seed users got ids ${created.admin.id}/${created.kefu1.id}, expected 1/2`);
  };
  const server = await startImServer({
    bin: SERVER_BIN,
    jwtSecret: JWT_SECRET,
    tmpPrefix: "im-js-",
    env,
    beforeStart: users.length > 0 ? seedUsers : undefined,
  });
  const { url } = server;
  const loginToken = server.loginToken;
  return Object.assign(server, {
    im: `${url}/im`,
    /** Users created by `startServer(env, {users})`, by username: {username, password, id, type}. */
    users: created,
    login: (user = ADMIN, extra = {}) => login(url, user, extra),
    loginToken: (user = ADMIN) => loginToken(user),
    logout: (token) => http(url, "POST", "/auth/logout", { token }),
  });
}

/**
 * `im-server user add` against the database of `env` (run before the server starts).
 * Resolves with {username, password, id, type}.
 */
export function addUser({ cwd, env }, { username, password, type = "user", displayName }) {
  const args = ["user", "add", "--username", username, "--password", password, "--type", type];
  if (displayName) args.push("--display-name", displayName);
  return new Promise((res, rej) => {
    execFile(SERVER_BIN, args, { cwd, env, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) return rej(new Error(`user add ${username}: ${err.message}\n${stdout}${stderr}`));
      const m = `${stdout}${stderr}`.match(/id=(\d+)/);
      if (!m) return rej(new Error(`user add ${username}: no id in output: ${stdout}${stderr}`));
      res({ username, password, id: Number(m[1]), type });
    });
  });
}

export function login(base, user = ADMIN, extra = {}) {
  return http(base, "POST", "/auth/login", {
    body: { username: user.username, password: user.password, ...extra },
  });
}

// ---------------------------------------------------------------------------------------
// JWT helpers (no dependency): sign with HMAC, or alg "none".

const b64url = (buf) => Buffer.from(buf).toString("base64url");

export function signJwt(payload, secret, alg = "HS256") {
  const header = { alg, typ: "JWT" };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  if (alg === "none") return `${input}.`;
  const hash = { HS256: "sha256", HS384: "sha384", HS512: "sha512" }[alg];
  if (!hash) throw new Error(`signJwt: unsupported alg ${alg}`);
  return `${input}.${createHmac(hash, secret).update(input).digest("base64url")}`;
}

export function decodeJwt(token) {
  const [h, p] = token.split(".");
  return {
    header: JSON.parse(Buffer.from(h, "base64url").toString()),
    payload: JSON.parse(Buffer.from(p, "base64url").toString()),
  };
}

// ---------------------------------------------------------------------------------------
// Sockets: connect, record every event in order, bounded waits.

/** A socket.io-client 4.x socket to /im that never reconnects by itself. */
export function connectV4(server, opts = {}) {
  return ioV4(server.im, { reconnection: false, forceNew: true, timeout: 5000, ...opts });
}

/** A socket.io-client 2.x socket to /im that never reconnects by itself. */
export function connectV2(server, opts = {}) {
  return ioV2(server.im, { reconnection: false, forceNew: true, timeout: 5000, ...opts });
}

const LIFECYCLE = ["connect", "connect_error", "disconnect"];

/**
 * Record every event a socket sees, in order: lifecycle events and (v4: through onAny,
 * v2: through the known names) every server event. Returns {events, waitFor, names}.
 */
export function record(socket, { extraNames = [] } = {}) {
  const events = [];
  const waiters = [];
  const push = (name, args) => {
    events.push({ name, args, at: Date.now() });
    for (const w of [...waiters]) w();
  };
  for (const name of LIFECYCLE) socket.on(name, (...args) => push(name, args));
  if (typeof socket.onAny === "function") {
    socket.onAny((name, ...args) => push(name, args));
  } else {
    // 2.x has no onAny: listen to the names the server can send.
    for (const name of ["error", "connected", "token_expiring", "message", "presence", ...extraNames])
      socket.on(name, (...args) => push(name, args));
  }
  const rec = {
    events,
    names: () => events.map((e) => e.name),
    /** Resolve with the first recorded event matching `name` (and pred), or reject after ms. */
    waitFor(name, ms = 5000, pred = () => true) {
      const find = () => events.find((e) => e.name === name && pred(...e.args));
      const hit = find();
      if (hit) return Promise.resolve(hit);
      return new Promise((res, rej) => {
        const w = () => {
          const e = find();
          if (e) {
            clearTimeout(t);
            waiters.splice(waiters.indexOf(w), 1);
            res(e);
          }
        };
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          rej(new Error(`timed out after ${ms} ms waiting for "${name}"; saw ${JSON.stringify(rec.names())} ${JSON.stringify(events.map((e) => e.args))}`));
        }, ms);
        waiters.push(w);
      });
    },
  };
  return rec;
}

/** Resolve with the args of the next `event` on an emitter, or reject after ms. */
export function once(emitter, event, ms = 5000) {
  return new Promise((res, rej) => {
    const t = setTimeout(() => {
      emitter.off(event, h);
      rej(new Error(`timed out after ${ms} ms waiting for "${event}"`));
    }, ms);
    const h = (...args) => {
      clearTimeout(t);
      res(args);
    };
    emitter.once(event, h);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Close sockets, ignoring ones already closed. */
export function closeAll(...sockets) {
  for (const s of sockets.flat()) {
    try {
      s?.close();
    } catch {}
  }
}

/** Connect with the given options and wait for `connected`; returns {socket, rec, info}. */
export async function connectOk(server, opts = {}, { v2 = false, ms = 5000 } = {}) {
  const socket = v2 ? connectV2(server, opts) : connectV4(server, opts);
  const rec = record(socket);
  try {
    const ev = await rec.waitFor("connected", ms);
    return { socket, rec, info: ev.args[0] };
  } catch (e) {
    socket.close();
    throw e;
  }
}

/**
 * Connect expecting a legacy-mode refusal: waits for the `disconnect`, then a short quiet
 * period so any stray event after it would be seen too. Returns the recorder.
 */
export async function connectRefusedLegacy(server, opts = {}, { v2 = false, ms = 5000, quietMs = 300 } = {}) {
  const socket = v2 ? connectV2(server, opts) : connectV4(server, opts);
  const rec = record(socket);
  try {
    await rec.waitFor("disconnect", ms);
    await sleep(quietMs);
    return { socket, rec };
  } finally {
    socket.close();
  }
}

export const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** Strip ANSI colour codes from log text. */
export const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, "");

/**
 * Tokens a user could end up holding, built from a real login token's claims:
 * signed with another secret, `alg: none`, expired an hour ago, and valid but with no
 * `user_tokens` row (fresh jti, signed with the server's own secret).
 */
export function forgedTokens(realToken, secret = JWT_SECRET) {
  const { payload } = decodeJwt(realToken);
  const now = Math.floor(Date.now() / 1000);
  const jti = () => createHmac("sha256", String(Math.random())).update(String(now)).digest("hex").slice(0, 32);
  return {
    garbage: "this-is-not-a-jwt",
    otherSecret: signJwt(payload, "a-completely-different-secret-0123456789", "HS256"),
    algNone: signJwt(payload, "", "none"),
    expired: signJwt({ ...payload, iat: now - 7200, exp: now - 3600, jti: jti() }, secret, "HS256"),
    notFound: signJwt({ ...payload, sub: "1", iat: now - 5, exp: now + 3600, jti: jti() }, secret, "HS256"),
  };
}

/** The recorded events named `name` (and matching pred), in order. */
export function eventsOf(rec, name, pred = () => true) {
  return rec.events.filter((e) => e.name === name && pred(...e.args));
}

/**
 * Wait `ms`, then throw if any recorder saw an event named `name` (matching pred) that it had
 * not seen when the call started: "nothing more arrives" as a bounded check.
 */
export async function expectNothingMore(recs, name, ms = 400, pred = () => true) {
  const list = [recs].flat();
  const before = list.map((r) => eventsOf(r, name, pred).length);
  await sleep(ms);
  list.forEach((r, i) => {
    const now = eventsOf(r, name, pred);
    if (now.length !== before[i])
      throw new Error(`unexpected "${name}" within ${ms} ms: ${JSON.stringify(now.slice(before[i]).map((e) => e.args))}`);
  });
}

/** Poll `fn` every 100 ms until it returns a truthy value; reject with the last value after ms. */
export async function eventually(fn, ms = 5000, what = "condition") {
  const t0 = Date.now();
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** A loopback TCP port nothing listens on (bound, then closed). */
export function free() {
  return new Promise((res, rej) => {
    const srv = createTcpServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/**
 * A private redis-server on a free loopback port (IM_TEST_REDIS_SERVER_BIN, which
 * scripts/test.sh provides), no persistence. `stop()` kills it (SIGKILL: an outage, not a
 * shutdown); `restart()` starts it again on the same port; `kill()` for cleanup.
 */
export async function startRedis() {
  const port = await free();
  const bin = process.env.IM_TEST_REDIS_SERVER_BIN || "redis-server";
  const r = { port, url: `redis://127.0.0.1:${port}/?protocol=resp3`, child: null };
  const up = () =>
    new Promise((res) => {
      const s = tcpConnect(port, "127.0.0.1", () => (s.end(), res(true)));
      s.on("error", () => res(false));
    });
  r.restart = async () => {
    r.child = spawn(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
    for (let i = 0; i < 100; i++) {
      if (await up()) return r;
      await sleep(50);
    }
    r.kill();
    throw new Error(`redis-server (${bin}) did not start on ${port}: run through scripts/test.sh`);
  };
  r.stop = async () => {
    const gone = new Promise((res) => r.child.once("exit", res));
    r.child.kill("SIGKILL");
    await gone;
  };
  r.kill = () => r.child?.kill("SIGKILL");
  return r.restart();
}
