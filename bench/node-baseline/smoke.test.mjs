// Smoke test of the Node baseline gateway: `node --test` in this directory.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';

const here = path.dirname(fileURLToPath(import.meta.url));
const API_KEY = 'smoke-api-key';

let server;
let baseUrl;
let tmp;

function once(socket, event, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timeout waiting for "${event}"`)), timeoutMs);
    socket.once(event, (arg) => {
      clearTimeout(t);
      resolve(arg);
    });
  });
}

async function postJson(route, body, headers = {}) {
  const res = await fetch(baseUrl + route, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function login(username, password = 'bench-pass') {
  const { status, body } = await postJson('/auth/login', { username, password });
  assert.equal(status, 200, JSON.stringify(body));
  return body.data;
}

function connect(token) {
  return io(`${baseUrl}/im`, { auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true });
}

before(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'node-baseline-'));
  // PORT=0: the OS picks a free port; the server prints the real one.
  server = spawn(process.execPath, ['server.js'], {
    cwd: here,
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      DATABASE: path.join(tmp, 'smoke.db'),
      JWT_SECRET: 'smoke-test-secret-0123456789-abcdefghijkl',
      API_KEY,
      SEED_USERS: '2',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  baseUrl = await new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 20000);
    server.once('exit', (code) => reject(new Error(`server exited early (${code}): ${out}`)));
    server.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(t);
        resolve(m[1]);
      }
    });
  });
});

after(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    const code = await exited;
    assert.equal(code, 0, 'server should exit 0 on SIGTERM');
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('health', async () => {
  const res = await fetch(`${baseUrl}/health`);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: 'ok' });
});

test('login rejects a wrong password', async () => {
  const { status, body } = await postJson('/auth/login', { username: 'bench1', password: 'nope' });
  assert.equal(status, 401);
  assert.equal(body.success, false);
  assert.equal(body.code, 'INVALID_CREDENTIALS');
});

test('login, connect, send_message, publish, bad token', async () => {
  const a = await login('bench1');
  const b = await login('bench2');
  assert.equal(a.token_type, 'Bearer');
  assert.equal(a.expires_in, 86400);
  assert.equal(a.user.username, 'bench1');
  assert.equal(typeof a.user.id, 'number');
  assert.equal(a.user.user_type, 'user');
  assert.equal(a.user.id, 1, 'benchN is seeded with id N');

  const s1 = connect(`Bearer ${a.token}`);
  const s2 = connect(b.token);
  try {
    const [c1, c2] = await Promise.all([once(s1, 'connected'), once(s2, 'connected')]);
    assert.equal(c1.userId, a.user.id);
    assert.equal(c1.username, 'bench1');
    assert.equal(c1.userType, 'user');
    assert.equal(c1.displayName, a.user.display_name);
    assert.equal(c1.socketId, s1.id);
    assert.equal(c1.expiresAt, a.expires_at);
    assert.ok(!Number.isNaN(Date.parse(c1.serverTime)));
    assert.equal(c2.userId, b.user.id);
    assert.equal(c2.username, 'bench2');

    // bench1 -> bench2 with ack
    const received = once(s2, 'message');
    const ack = await s1.timeout(5000).emitWithAck('send_message', {
      to: b.user.id, content: 'hello from bench1', client_msg_id: 'c-1',
    });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.equal(typeof ack.id, 'number');
    const msg = await received;
    assert.equal(msg.id, ack.id);
    assert.equal(msg.content, 'hello from bench1');
    assert.equal(msg.from, a.user.id);
    assert.equal(msg.to, b.user.id);
    assert.equal(msg.client_msg_id, 'c-1');
    assert.equal(msg.created_at, ack.created_at);

    // validation
    const bad = await s1.timeout(5000).emitWithAck('send_message', { to: b.user.id, content: '' });
    assert.deepEqual([bad.ok, bad.code], [false, 'BAD_REQUEST']);
    const nobody = await s1.timeout(5000).emitWithAck('send_message', { to: 999999, content: 'x' });
    assert.deepEqual([nobody.ok, nobody.code], [false, 'USER_NOT_FOUND']);

    // publish to bench2
    const pushed = once(s2, 'notice');
    const pub = await postJson(
      '/api/publish',
      { event: 'notice', data: { hello: 'bench2' }, to_users: [b.user.id] },
      { 'X-Api-Key': API_KEY },
    );
    assert.equal(pub.status, 200, JSON.stringify(pub.body));
    assert.equal(pub.body.success, true);
    assert.equal(pub.body.data.delivered_to_sockets, 1);
    assert.deepEqual(await pushed, { hello: 'bench2' });

    const noKey = await postJson('/api/publish', { event: 'notice', broadcast: true });
    assert.deepEqual([noKey.status, noKey.body.code], [401, 'TOKEN_MISSING']);
    const wrongKey = await postJson('/api/publish', { event: 'notice', broadcast: true }, { 'X-Api-Key': 'wrong' });
    assert.deepEqual([wrongKey.status, wrongKey.body.code], [403, 'FORBIDDEN']);
  } finally {
    s1.close();
    s2.close();
  }

  // garbage token: legacy mode => connect, error {code, message}, server disconnect
  const g = connect('garbage.token.value');
  try {
    const errP = once(g, 'error');
    const discP = once(g, 'disconnect');
    const err = await errP;
    assert.ok(['TOKEN_MALFORMED', 'TOKEN_INVALID_SIGNATURE'].includes(err.code), JSON.stringify(err));
    assert.equal(typeof err.message, 'string');
    assert.equal(await discP, 'io server disconnect');
  } finally {
    g.close();
  }
});

test('token from query over long-polling, from header, and missing token', async () => {
  const a = await login('bench1');
  const q = io(`${baseUrl}/im`, { query: { jwt_token: a.token }, transports: ['polling'], reconnection: false, forceNew: true });
  try {
    assert.equal((await once(q, 'connected')).username, 'bench1');
  } finally {
    q.close();
  }
  const h = io(`${baseUrl}/im`, {
    extraHeaders: { Authorization: `Bearer ${a.token}` }, transports: ['polling'], reconnection: false, forceNew: true,
  });
  try {
    assert.equal((await once(h, 'connected')).username, 'bench1');
  } finally {
    h.close();
  }
  const m = connect(undefined);
  try {
    assert.equal((await once(m, 'error')).code, 'TOKEN_MISSING');
  } finally {
    m.close();
  }
});
