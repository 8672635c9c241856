// The one way the JS suites (tests/js, tests/browser) start a real im-server: `im-server serve`
// on 127.0.0.1:0 in a fresh temp dir with its own SQLite file, nothing inherited from the
// caller's shell config. Node built-ins only, so it needs no node_modules of its own. Each suite
// wraps it with its own secret, binary and extras (tests/js/harness.mjs, tests/browser/lib.mjs).

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const STARTUP_MS = 30_000;

// Config the servers must not inherit from the caller's shell: every server starts from the
// contract's defaults plus the overrides a test asks for.
const INHERITED_CONFIG = /^(IM_.*|PORT|HOST|DATABASE_URL|REDIS_URL|JWT_SECRET|FRONTEND_URL|NODE_ENV)$/;

// Servers still running when the node process exits (a test that threw before stop()) are
// killed then, so no run leaves an im-server behind.
const live = new Set();
process.on("exit", () => {
  for (const c of live) {
    try {
      c.kill("SIGKILL");
    } catch {
      /* gone */
    }
  }
});

/**
 * Start `bin serve` in a fresh temp dir (`mkdtemp` prefix `tmpPrefix`) with its own SQLite file
 * and `JWT_SECRET=jwtSecret`. `env` adds or overrides variables (a value of `undefined` removes
 * one). `beforeStart({dir, env})`, if given, runs before the server is spawned, with the exact
 * environment it will get (e.g. to create users with `im-server user add`). Resolves once the
 * "listening on" line is printed with {port, url, dir, stdout, stderr, stop(), http(),
 * loginToken(user)}.
 */
export async function startImServer({ bin, jwtSecret, tmpPrefix, env = {}, beforeStart }) {
  if (!existsSync(bin)) throw new Error(`IM_SERVER_BIN ${bin} missing: cargo build --bin im-server`);
  const dir = mkdtempSync(join(tmpdir(), tmpPrefix));
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !INHERITED_CONFIG.test(k)));
  const fullEnv = {
    ...base,
    HOST: "127.0.0.1",
    PORT: "0",
    DATABASE_URL: `sqlite://${dir}/im.db?mode=rwc`,
    JWT_SECRET: jwtSecret,
    RUST_LOG: "info",
    ...env,
  };
  for (const [k, v] of Object.entries(fullEnv)) if (v === undefined) delete fullEnv[k];
  if (beforeStart) await beforeStart({ dir, env: fullEnv });

  const child = spawn(bin, ["serve"], { cwd: dir, env: fullEnv, stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((res) =>
    child.once("exit", (code, signal) => {
      live.delete(child);
      res({ code, signal });
    }),
  );

  const port = await new Promise((res, rej) => {
    const timer = setTimeout(
      () => rej(new Error(`server did not print its URL within ${STARTUP_MS} ms\nstdout: ${stdout}\nstderr: ${stderr}`)),
      STARTUP_MS,
    );
    child.stdout.on("data", (d) => {
      stdout += d;
      const m = stdout.match(/listening on http:\/\/[^\s:]+:(\d+)/);
      if (m) {
        clearTimeout(timer);
        res(Number(m[1]));
      }
    });
    child.once("error", (e) => {
      clearTimeout(timer);
      rej(e);
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      rej(new Error(`server exited (${code ?? signal}) before listening\nstdout: ${stdout}\nstderr: ${stderr}`));
    });
  });

  const url = `http://127.0.0.1:${port}`;
  const server = {
    port,
    url,
    dir,
    get stderr() {
      return stderr;
    },
    get stdout() {
      return stdout;
    },
    /** SIGTERM, wait for exit (SIGKILL after 10 s), remove the temp dir. Idempotent. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
        server.exit = await exited;
        clearTimeout(t);
      } else {
        server.exit = await exited;
      }
      rmSync(dir, { recursive: true, force: true });
      return server.exit;
    },
    http: (method, path, opts) => http(url, method, path, opts),
    /** POST /auth/login; the token, or an error naming the status and body. */
    async loginToken(user) {
      const r = await http(url, "POST", "/auth/login", { body: { username: user.username, password: user.password } });
      if (r.status !== 200) throw new Error(`login ${user.username} -> ${r.status} ${JSON.stringify(r.body)}`);
      return r.body.data.token;
    },
  };
  return server;
}

/** JSON HTTP request from node (no Origin header); returns {status, body, headers}. */
export async function http(base, method, path, { token, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined) h["content-type"] = "application/json";
  const res = await fetch(base + path, {
    method,
    headers: h,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed, headers: res.headers };
}
