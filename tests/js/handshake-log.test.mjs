// The handshake log line an operator greps for: one line per refused handshake with
// transport=, source=, verdict=TOKEN_…, a token=sha256: fingerprint and elapsed_ms=,
// on stderr, and never the raw token.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, connectRefusedLegacy, forgedTokens, sleep, stripAnsi, ADMIN } from "./harness.mjs";

let server;
let wsToken; // refused over websocket, token in `auth`
let pollToken; // refused over polling, token in the Authorization header
let good;

before(async () => {
  server = await startServer();
  good = await server.loginToken(ADMIN);
  const t = forgedTokens(good);
  wsToken = t.otherSecret;
  pollToken = t.expired;
  const a = await connectRefusedLegacy(server, { transports: ["websocket"], auth: { token: wsToken } });
  assert.equal(a.rec.events[1]?.args[0]?.code, "TOKEN_INVALID_SIGNATURE");
  const b = await connectRefusedLegacy(server, { transports: ["polling"], extraHeaders: { Authorization: `Bearer ${pollToken}` } });
  assert.equal(b.rec.events[1]?.args[0]?.code, "TOKEN_EXPIRED");
  await sleep(300); // let the log lines reach the pipe
});
after(async () => {
  await server?.stop();
});

/** All log output, wherever it went, without colour codes. */
const allLogs = () => stripAnsi(server.stdout + server.stderr);
const linesWith = (text, re) => text.split("\n").filter((l) => re.test(l));

test("one log line per refused handshake naming transport, source, verdict, fingerprint and elapsed time", () => {
  const logs = allLogs();
  for (const [verdict, transport, source] of [
    ["TOKEN_INVALID_SIGNATURE", "websocket", "auth"],
    ["TOKEN_EXPIRED", "polling", "header"],
  ]) {
    const lines = linesWith(logs, new RegExp(`verdict="?${verdict}\\b`));
    assert.equal(lines.length, 1, `exactly one line with verdict ${verdict}; got:\n${lines.join("\n")}`);
    const line = lines[0];
    assert.match(line, new RegExp(`transport="?${transport}\\b`), line);
    assert.match(line, new RegExp(`source="?${source}\\b`), line);
    assert.match(line, /token="?sha256:[0-9a-f]{8,}/, line);
    assert.match(line, /elapsed_ms="?\d+(\.\d+)?/, line);
  }
});

test("the raw token never appears in the logs", () => {
  const logs = server.stdout + server.stderr;
  for (const tok of [wsToken, pollToken, good]) {
    assert.ok(!logs.includes(tok), "a whole token is in the logs");
    assert.ok(!logs.includes(tok.split(".")[2]), "a token's signature is in the logs");
  }
});

test("logs go to stderr; stdout carries only the listening line", () => {
  assert.match(server.stdout, /im-server listening on http:\/\/127\.0\.0\.1:\d+/);
  const stray = server.stdout.split("\n").filter((l) => l.trim() && !/im-server listening on http/.test(l));
  assert.equal(stray.length, 0, `stdout has ${stray.length} log lines besides the listening line, e.g. ${JSON.stringify(stripAnsi(stray[0] ?? ""))}`);
  assert.ok(server.stderr.includes("TOKEN_INVALID_SIGNATURE"), "the handshake line is on stderr");
});

test("log output to a pipe is plain text (no ANSI colour codes)", () => {
  const out = server.stdout + server.stderr;
  const m = out.match(/\x1b\[[0-9;]*m/);
  assert.equal(m, null, `found ANSI escape ${JSON.stringify(m?.[0])} in log output piped to a file`);
});

test("the handshake line is grep-able as written: verdict=TOKEN_… and token=sha256:… unquoted", () => {
  // Colour codes and stdout-vs-stderr are checked above; this checks the field syntax only.
  const lines = linesWith(allLogs(), /verdict=\S*TOKEN_INVALID_SIGNATURE/);
  assert.equal(lines.length, 1, "one handshake line");
  const line = lines[0];
  for (const needle of ["transport=", "source=", "verdict=TOKEN_INVALID_SIGNATURE", "token=sha256:", "elapsed_ms="]) {
    assert.ok(line.includes(needle), `the line lacks the literal ${JSON.stringify(needle)}: ${JSON.stringify(line)}`);
  }
});
