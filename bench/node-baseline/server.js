// Node/socket.io baseline gateway for im-server benchmarks.
//
// This is the gateway a NestJS/socket.io team typically runs today, written plainly:
// express for HTTP, socket.io@4 for the realtime side, jsonwebtoken (HS256), better-sqlite3
// (WAL) and argon2id for passwords. One process, in-memory socket.io adapter, no clustering.
// It implements the core of /work/shared/CONTRACT.md with the same wire format as im-server
// so a single load generator drives both. It is NOT slowed down on purpose.

import http from 'node:http';
import crypto from 'node:crypto';
import express from 'express';
import cors from 'cors';
import { Server } from 'socket.io';
import jwt from 'jsonwebtoken';
import Database from 'better-sqlite3';
import argon2 from 'argon2';

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

const config = {
  port: Number.parseInt(process.env.PORT ?? '3100', 10),
  host: process.env.HOST || '127.0.0.1',
  jwtSecret: process.env.JWT_SECRET || 'dev-secret-change-me-please-0123456789',
  database: process.env.DATABASE || './baseline.db',
  apiKey: process.env.API_KEY || null,
  tokenTtlSecs: Number.parseInt(process.env.TOKEN_TTL_SECS ?? '86400', 10),
  seedUsers: Number.parseInt(process.env.SEED_USERS ?? '0', 10) || 0,
  leewaySecs: 30,
};

// argon2id with the OWASP-recommended parameters (m=19 MiB, t=2, p=1) — the same cost as
// the Rust `argon2` crate defaults im-server uses, so login benchmarks compare like for like.
const ARGON2_OPTIONS = { type: argon2.argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 };

// ---------------------------------------------------------------------------------------------
// Database
// ---------------------------------------------------------------------------------------------

const db = new Database(config.database);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.pragma('busy_timeout = 5000');
db.pragma('foreign_keys = ON');

db.exec(`
  CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    user_type     TEXT    NOT NULL DEFAULT 'user',
    display_name  TEXT,
    email         TEXT,
    is_active     INTEGER NOT NULL DEFAULT 1,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
  );
  CREATE TABLE IF NOT EXISTS user_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash   TEXT    NOT NULL UNIQUE,
    jti          TEXT    NOT NULL,
    is_revoked   INTEGER NOT NULL DEFAULT 0,
    expires_at   TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    last_used_at TEXT,
    user_agent   TEXT,
    ip           TEXT
  );
  CREATE INDEX IF NOT EXISTS idx_user_tokens_user_id ON user_tokens(user_id);
  CREATE TABLE IF NOT EXISTS messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    from_user_id  INTEGER NOT NULL REFERENCES users(id),
    to_user_id    INTEGER NOT NULL REFERENCES users(id),
    content       TEXT    NOT NULL,
    client_msg_id TEXT,
    created_at    TEXT    NOT NULL
  );
  CREATE INDEX IF NOT EXISTS idx_messages_pair ON messages(from_user_id, to_user_id, id);
  CREATE INDEX IF NOT EXISTS idx_messages_to ON messages(to_user_id, id);
`);

const stmt = {
  userByUsername: db.prepare(
    'SELECT id, username, password_hash, user_type, display_name, email, is_active FROM users WHERE username = ?',
  ),
  userById: db.prepare(
    'SELECT id, username, user_type, display_name, email, is_active FROM users WHERE id = ?',
  ),
  userExists: db.prepare('SELECT 1 FROM users WHERE id = ?').pluck(),
  countUsers: db.prepare('SELECT COUNT(*) FROM users').pluck(),
  insertUser: db.prepare(
    `INSERT INTO users (username, password_hash, user_type, display_name, email, is_active, created_at, updated_at)
     VALUES (@username, @password_hash, @user_type, @display_name, @email, 1, @now, @now)`,
  ),
  insertToken: db.prepare(
    `INSERT INTO user_tokens (user_id, token_hash, jti, is_revoked, expires_at, created_at, user_agent, ip)
     VALUES (?, ?, ?, 0, ?, ?, ?, ?)`,
  ),
  tokenByHash: db.prepare(
    'SELECT user_id, is_revoked, expires_at FROM user_tokens WHERE token_hash = ?',
  ),
  insertMessage: db.prepare(
    `INSERT INTO messages (from_user_id, to_user_id, content, client_msg_id, created_at)
     VALUES (?, ?, ?, ?, ?)`,
  ),
};

// ISO 8601 UTC, second precision: 2026-11-22T10:00:00Z
const iso = (ms = Date.now()) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const sha256Hex = (s) => crypto.createHash('sha256').update(s).digest('hex');

// If the users table is empty: bench1..benchN (password "bench-pass", ids 1..N, so benchN has
// id N) and then admin/admin123 (user_type "admin").
async function seedIfEmpty() {
  if (stmt.countUsers.get() > 0) return;
  const started = Date.now();
  // Hash once, reuse for every seeded row: 20k argon2 hashes would take minutes.
  const [benchHash, adminHash] = await Promise.all([
    config.seedUsers > 0 ? argon2.hash('bench-pass', ARGON2_OPTIONS) : null,
    argon2.hash('admin123', ARGON2_OPTIONS),
  ]);
  const now = iso();
  db.transaction(() => {
    for (let i = 1; i <= config.seedUsers; i++) {
      stmt.insertUser.run({
        username: `bench${i}`, password_hash: benchHash, user_type: 'user',
        display_name: `Bench User ${i}`, email: `bench${i}@bench.local`, now,
      });
    }
    stmt.insertUser.run({
      username: 'admin', password_hash: adminHash, user_type: 'admin',
      display_name: 'Administrator', email: 'admin@bench.local', now,
    });
  })();
  console.log(`seeded ${config.seedUsers} bench users + admin in ${Date.now() - started} ms`);
}

// ---------------------------------------------------------------------------------------------
// Auth
// ---------------------------------------------------------------------------------------------

class AuthError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function publicUser(u) {
  return {
    id: u.id,
    username: u.username,
    user_type: u.user_type,
    display_name: u.display_name,
    email: u.email,
  };
}

function issueToken(user, req) {
  const jti = crypto.randomUUID();
  const token = jwt.sign(
    { sub: String(user.id), username: user.username, user_type: user.user_type, jti },
    config.jwtSecret,
    { algorithm: 'HS256', expiresIn: config.tokenTtlSecs },
  );
  const { exp } = jwt.decode(token);
  const expiresAt = iso(exp * 1000);
  stmt.insertToken.run(
    user.id, sha256Hex(token), jti, expiresAt, iso(),
    req.get('user-agent') ?? null, req.ip ?? null,
  );
  return { token, expiresAt };
}

function mapJwtError(err) {
  if (err instanceof jwt.TokenExpiredError) {
    return new AuthError('TOKEN_EXPIRED', 'The token has expired; log in again to get a new one.');
  }
  if (err instanceof jwt.NotBeforeError) {
    return new AuthError('TOKEN_NOT_YET_VALID', 'The token is not valid yet; check the clocks of issuer and server.');
  }
  const msg = err?.message ?? '';
  if (msg === 'invalid signature') {
    return new AuthError('TOKEN_INVALID_SIGNATURE', 'The token signature does not match this server\'s secret; log in again against this server.');
  }
  if (msg === 'invalid algorithm') {
    return new AuthError('TOKEN_ALGORITHM_NOT_ALLOWED', 'The token is signed with an algorithm this server does not accept (HS256 only).');
  }
  if (msg.startsWith('jwt subject') || msg.startsWith('jwt issuer') || msg.startsWith('jwt audience')) {
    return new AuthError('TOKEN_CLAIMS_INVALID', 'The token claims are not valid for this server.');
  }
  return new AuthError('TOKEN_MALFORMED', 'The token is not a well-formed JWT; send the token exactly as returned by /auth/login.');
}

/** Full check of a bearer token: signature + claims, DB row, user. Throws AuthError. */
function authenticateToken(token) {
  if (!token) {
    throw new AuthError('TOKEN_MISSING', 'No token was sent; pass it in auth.token, an Authorization: Bearer header or ?token=.');
  }
  let claims;
  try {
    claims = jwt.verify(token, config.jwtSecret, {
      algorithms: ['HS256'],
      clockTolerance: config.leewaySecs,
    });
  } catch (err) {
    throw mapJwtError(err);
  }
  const userId = Number(claims.sub);
  if (!Number.isSafeInteger(userId)) {
    throw new AuthError('TOKEN_CLAIMS_INVALID', 'The token subject is not a user id.');
  }
  const row = stmt.tokenByHash.get(sha256Hex(token));
  if (!row || row.user_id !== userId) {
    throw new AuthError('TOKEN_NOT_FOUND', 'This token was not issued by this server (no session record); log in again.');
  }
  if (row.is_revoked) {
    throw new AuthError('TOKEN_REVOKED', 'This token has been revoked (logged out); log in again.');
  }
  if (Date.parse(row.expires_at) + config.leewaySecs * 1000 <= Date.now()) {
    throw new AuthError('TOKEN_EXPIRED', 'The session has expired; log in again to get a new one.');
  }
  const user = stmt.userById.get(userId);
  if (!user) throw new AuthError('USER_NOT_FOUND', 'The user of this token no longer exists.');
  if (!user.is_active) throw new AuthError('USER_DISABLED', 'This account is disabled; contact an administrator.');
  return { user, claims };
}

function stripBearer(v) {
  if (typeof v !== 'string') return null;
  const t = v.trim().replace(/^Bearer\s+/i, '').trim();
  return t || null;
}

function tokenFromHandshake(handshake) {
  const fromAuth = stripBearer(handshake.auth?.token);
  if (fromAuth) return fromAuth;
  const header = handshake.headers?.authorization;
  if (typeof header === 'string' && /^Bearer\s+/i.test(header)) {
    const t = stripBearer(header);
    if (t) return t;
  }
  const q = handshake.query ?? {};
  return stripBearer(q.token) || stripBearer(q.jwt_token) || null;
}

// ---------------------------------------------------------------------------------------------
// HTTP (express)
// ---------------------------------------------------------------------------------------------

const app = express();
app.disable('x-powered-by');
app.set('etag', false);
app.use(cors({ origin: true, credentials: true }));
app.use(express.json({ limit: '1mb' }));

const ok = (res, message, data) => res.json({ success: true, message, data });
const fail = (res, status, code, message) => res.status(status).json({ success: false, code, message });

app.get('/health', (_req, res) => res.json({ status: 'ok' }));

app.post('/auth/login', async (req, res) => {
  const { username, password, user_type: userType } = req.body ?? {};
  if (typeof username !== 'string' || username.length === 0) {
    return fail(res, 400, 'BAD_REQUEST', 'Field "username" is required and must be a non-empty string.');
  }
  if (typeof password !== 'string' || password.length === 0) {
    return fail(res, 400, 'BAD_REQUEST', 'Field "password" is required and must be a non-empty string.');
  }
  const user = stmt.userByUsername.get(username);
  const valid =
    user &&
    (userType === undefined || userType === null || userType === user.user_type) &&
    (await argon2.verify(user.password_hash, password));
  if (!valid) {
    return fail(res, 401, 'INVALID_CREDENTIALS', 'Wrong username or password.');
  }
  if (!user.is_active) {
    return fail(res, 403, 'USER_DISABLED', 'This account is disabled; contact an administrator.');
  }
  const { token, expiresAt } = issueToken(user, req);
  return ok(res, 'Login successful', {
    token,
    token_type: 'Bearer',
    expires_in: config.tokenTtlSecs,
    expires_at: expiresAt,
    user: publicUser(user),
  });
});

// Reserved socket.io event names cannot be emitted by the application.
const RESERVED_EVENTS = new Set([
  'connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener',
]);

app.post('/api/publish', async (req, res) => {
  if (!config.apiKey) return fail(res, 403, 'FORBIDDEN', 'The publish API is disabled (no API_KEY configured).');
  const key = req.get('x-api-key');
  if (!key) return fail(res, 401, 'TOKEN_MISSING', 'Send the API key in the X-Api-Key header.');
  const a = Buffer.from(key);
  const b = Buffer.from(config.apiKey);
  if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) {
    return fail(res, 403, 'FORBIDDEN', 'The X-Api-Key is not valid.');
  }

  const { event, data, to_users: toUsers, rooms, user_type: userType, broadcast } = req.body ?? {};
  if (typeof event !== 'string' || event.length === 0 || RESERVED_EVENTS.has(event)) {
    return fail(res, 400, 'BAD_REQUEST', 'Field "event" must be a non-empty, non-reserved event name.');
  }
  if (toUsers !== undefined && toUsers !== null &&
      (!Array.isArray(toUsers) || !toUsers.every((u) => Number.isSafeInteger(Number(u))))) {
    return fail(res, 400, 'BAD_REQUEST', 'Field "to_users" must be an array of user ids.');
  }
  if (rooms !== undefined && rooms !== null &&
      (!Array.isArray(rooms) || !rooms.every((r) => typeof r === 'string' && r.length > 0))) {
    return fail(res, 400, 'BAD_REQUEST', 'Field "rooms" must be an array of room names.');
  }
  if (userType !== undefined && userType !== null && (typeof userType !== 'string' || !userType)) {
    return fail(res, 400, 'BAD_REQUEST', 'Field "user_type" must be a non-empty string.');
  }
  if (broadcast !== undefined && broadcast !== null && typeof broadcast !== 'boolean') {
    return fail(res, 400, 'BAD_REQUEST', 'Field "broadcast" must be a boolean.');
  }

  const targets = new Set();
  for (const u of toUsers ?? []) targets.add(`user:${Number(u)}`);
  for (const r of rooms ?? []) targets.add(r);
  if (userType) targets.add(`type:${userType}`);
  if (!broadcast && targets.size === 0) {
    return fail(res, 400, 'BAD_REQUEST', 'No target: give to_users, rooms, user_type or broadcast: true.');
  }

  let delivered;
  if (broadcast) {
    delivered = imNsp.sockets.size;
    imNsp.emit(event, data ?? null);
  } else {
    const roomList = [...targets];
    delivered = (await imNsp.adapter.sockets(new Set(roomList))).size;
    imNsp.to(roomList).emit(event, data ?? null);
  }
  return ok(res, 'Event published', { delivered_to_sockets: delivered });
});

app.use((_req, res) => fail(res, 404, 'BAD_REQUEST', 'No such route.'));

// express 5 forwards rejected promises here; body-parser errors land here too.
app.use((err, _req, res, _next) => {
  if (err?.type === 'entity.parse.failed' || err?.status === 400) {
    return fail(res, 400, 'BAD_REQUEST', 'The request body is not valid JSON.');
  }
  if (err?.type === 'entity.too.large') {
    return fail(res, 413, 'BAD_REQUEST', 'The request body is too large.');
  }
  console.error(err);
  return fail(res, 500, 'INTERNAL', 'Internal server error; see the server log.');
});

// ---------------------------------------------------------------------------------------------
// Socket.IO gateway, namespace /im
// ---------------------------------------------------------------------------------------------

const httpServer = http.createServer(app);
const io = new Server(httpServer, {
  path: '/socket.io/',
  pingInterval: 25000,
  pingTimeout: 20000,
  maxHttpBufferSize: 1e6,
  cors: { origin: true, credentials: true },
});
const imNsp = io.of('/im');

const MAX_CONTENT_BYTES = 65536;

function ackFn(ack) {
  return typeof ack === 'function' ? ack : () => {};
}

// NestJS-gateway style ("legacy" failure mode): authenticate in handleConnection; on
// failure emit `error` {code, message} and disconnect. Handlers are attached only after
// successful authentication.
imNsp.on('connection', (socket) => {
  let auth;
  try {
    auth = authenticateToken(tokenFromHandshake(socket.handshake));
  } catch (err) {
    const e = err instanceof AuthError ? err : new AuthError('INTERNAL', 'Authentication failed unexpectedly.');
    if (!(err instanceof AuthError)) console.error(err);
    socket.emit('error', { code: e.code, message: e.message });
    socket.disconnect(true);
    return;
  }

  const { user, claims } = auth;
  socket.data.user = user;
  socket.join([`user:${user.id}`, `type:${user.user_type}`]);
  socket.emit('connected', {
    userId: user.id,
    username: user.username,
    userType: user.user_type,
    displayName: user.display_name,
    socketId: socket.id,
    expiresAt: iso(claims.exp * 1000),
    serverTime: iso(),
  });

  socket.on('send_message', (payload, ack) => {
    const reply = ackFn(typeof payload === 'function' ? payload : ack);
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
      return reply({ ok: false, code: 'BAD_REQUEST', message: 'send_message expects {to, content, client_msg_id?}.' });
    }
    const { to, content, client_msg_id: clientMsgId } = payload;
    if (typeof content !== 'string' || content.length === 0) {
      return reply({ ok: false, code: 'BAD_REQUEST', message: 'Field "content" must be a non-empty string.' });
    }
    if (Buffer.byteLength(content, 'utf8') > MAX_CONTENT_BYTES) {
      return reply({ ok: false, code: 'BAD_REQUEST', message: `Field "content" exceeds ${MAX_CONTENT_BYTES} bytes.` });
    }
    if (clientMsgId !== undefined && clientMsgId !== null && typeof clientMsgId !== 'string') {
      return reply({ ok: false, code: 'BAD_REQUEST', message: 'Field "client_msg_id" must be a string.' });
    }
    const toId = typeof to === 'string' && /^\d+$/.test(to) ? Number(to) : to;
    if (!Number.isSafeInteger(toId) || toId <= 0) {
      return reply({ ok: false, code: 'BAD_REQUEST', message: 'Field "to" must be a user id.' });
    }
    if (!stmt.userExists.get(toId)) {
      return reply({ ok: false, code: 'USER_NOT_FOUND', message: `No user with id ${toId}.` });
    }

    const createdAt = iso();
    const { lastInsertRowid } = stmt.insertMessage.run(user.id, toId, content, clientMsgId ?? null, createdAt);
    const id = Number(lastInsertRowid);
    reply({ ok: true, id, created_at: createdAt });

    // Recipient's sockets + the sender's other sockets (socket.to excludes this socket).
    socket.to([`user:${toId}`, `user:${user.id}`]).emit('message', {
      id,
      from: user.id,
      to: toId,
      content,
      created_at: createdAt,
      client_msg_id: clientMsgId ?? null,
    });
  });

  // Unknown events: answer an ack if one was asked for, never close the socket.
  socket.onAny((event, ...args) => {
    if (event === 'send_message') return;
    const last = args[args.length - 1];
    if (typeof last === 'function') {
      last({ ok: false, code: 'BAD_REQUEST', message: `Unknown event "${event}".` });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Start / stop
// ---------------------------------------------------------------------------------------------

await seedIfEmpty();

httpServer.listen(config.port, config.host, () => {
  const { port } = httpServer.address();
  console.log(`listening on http://${config.host}:${port}`);
});

let shuttingDown = false;
function shutdown(signal) {
  if (shuttingDown) return;
  shuttingDown = true;
  console.log(`${signal} received, shutting down`);
  const force = setTimeout(() => {
    db.close();
    process.exit(0);
  }, 5000);
  force.unref();
  // Disconnects every socket and closes the HTTP server.
  io.close(() => {
    db.close();
    process.exit(0);
  });
  httpServer.closeIdleConnections?.();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
