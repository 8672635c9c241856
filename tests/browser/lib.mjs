// Shared helpers for the browser suite: the real im-server binary in a temp dir, a tiny static
// server for client-demo/ on a second origin, Debian's headless Chromium through playwright-core,
// screenshots, and bounded waits. Everything started here is stopped by `cleanup()` — and, as a
// last resort, synchronously when the node process exits.

import { spawn } from "node:child_process";
import { it } from "node:test";
import { createServer } from "node:http";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, existsSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, "../..");
export const SERVER_BIN = resolve(ROOT, process.env.IM_SERVER_BIN || "target/debug/im-server");
export const CHROMIUM_BIN = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
export const DEMO_DIR = join(ROOT, "client-demo");
export const SHOTS_DIR = join(ROOT, "test-artifacts", "browser");
export const JWT_SECRET = "browser-suite-secret-0123456789abcdef";
export const ADMIN = { username: "admin", password: "admin123", id: 1 };
export const KEFU = { username: "kefu1", password: "kefu123", id: 2 };

// Never let a package fetch a browser of its own: this suite drives Debian's chromium.
process.env.PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD = "1";

const STARTUP_MS = 30_000;
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// Config the servers must not inherit from the caller's shell.
const INHERITED_CONFIG = /^(IM_.*|PORT|HOST|DATABASE_URL|REDIS_URL|JWT_SECRET|FRONTEND_URL|NODE_ENV)$/;

const live = new Set(); // child processes to kill on exit, whatever happens
process.on("exit", () => {
  for (const c of live) {
    try {
      c.kill("SIGKILL");
    } catch {
      /* gone */
    }
  }
});

/** Rejects after `ms` with `what` in the message; clears its timer either way. */
export function within(ms, what, promise) {
  let t;
  const timeout = new Promise((_, rej) => {
    t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(t));
}

/**
 * `im-server serve` on 127.0.0.1:0 in a fresh temp dir with its own SQLite file. `env` adds or
 * overrides variables (`undefined` removes one). Resolves once the "listening on" line is printed.
 */
export async function startServer(env = {}) {
  if (!existsSync(SERVER_BIN)) throw new Error(`IM_SERVER_BIN ${SERVER_BIN} missing: cargo build --bin im-server`);
  const dir = mkdtempSync(join(tmpdir(), "im-browser-"));
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !INHERITED_CONFIG.test(k)));
  const fullEnv = {
    ...base,
    HOST: "127.0.0.1",
    PORT: "0",
    DATABASE_URL: `sqlite://${dir}/im.db?mode=rwc`,
    JWT_SECRET,
    RUST_LOG: "info",
    ...env,
  };
  for (const [k, v] of Object.entries(fullEnv)) if (v === undefined) delete fullEnv[k];
  const child = spawn(SERVER_BIN, ["serve"], { cwd: dir, env: fullEnv, stdio: ["ignore", "pipe", "pipe"] });
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
    /** SIGTERM, wait (SIGKILL after 10 s), remove the temp dir. Idempotent. */
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
    async loginToken(user) {
      const r = await http(url, "POST", "/auth/login", { body: { username: user.username, password: user.password } });
      if (r.status !== 200) throw new Error(`login ${user.username} -> ${r.status} ${JSON.stringify(r.body)}`);
      return r.body.data.token;
    },
  };
  return server;
}

/** JSON HTTP request from node (no Origin header); returns {status, body}. */
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
  return { status: res.status, body: parsed };
}

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

/** Serves client-demo/ (read-only, no node_modules) on 127.0.0.1:0 — a second origin. */
export async function startStaticServer(dir = DEMO_DIR) {
  const root = resolve(dir);
  const srv = createServer((req, res) => {
    let p = decodeURIComponent(new URL(req.url, "http://x").pathname);
    if (p.endsWith("/")) p += "index.html";
    const file = normalize(join(root, p));
    if (!file.startsWith(root + sep) || file.includes(`${sep}node_modules${sep}`) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": MIME[extname(file)] || "application/octet-stream", "cache-control": "no-store" });
    res.end(readFileSync(file));
  });
  await new Promise((res, rej) => {
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", res);
  });
  const port = srv.address().port;
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    stop: () => new Promise((res) => srv.close(() => res())).then(() => undefined),
    _srv: srv,
  };
}

/**
 * Debian's chromium, headless, with a fresh user-data dir (removed by close()).
 * Returns {context, page, pageErrors, consoleLines, close}.
 */
export async function launchBrowser() {
  const { chromium } = await import("playwright-core");
  if (!existsSync(CHROMIUM_BIN)) throw new Error(`CHROMIUM_BIN ${CHROMIUM_BIN} missing: apt-get install chromium`);
  const profile = mkdtempSync(join(tmpdir(), "im-chromium-"));
  const context = await within(
    60_000,
    "chromium launch",
    chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_BIN,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1400, height: 1000 },
      timeout: 60_000,
    }),
  );
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(15_000);
  page.setDefaultNavigationTimeout(15_000);
  const pageErrors = [];
  const consoleLines = [];
  page.on("pageerror", (e) => pageErrors.push(String(e && e.stack ? e.stack : e)));
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  let closed = false;
  return {
    context,
    page,
    pageErrors,
    consoleLines,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await within(15_000, "chromium close", context.close());
      } catch {
        const b = context.browser && context.browser();
        try {
          b?.process?.()?.kill("SIGKILL");
        } catch {
          /* ignore */
        }
      }
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Screenshot of what a person sees, to test-artifacts/browser/<name>.png: the viewport with
 * `focus` (a selector) scrolled into view. (A full-page capture would paint the sticky top bar and
 * event log in the middle of the page.) Never fails the test by itself.
 */
export async function shot(page, name, focus) {
  mkdirSync(SHOTS_DIR, { recursive: true });
  const path = join(SHOTS_DIR, `${name}.png`);
  try {
    if (focus) {
      await page.$eval(focus, (e) => e.scrollIntoView({ block: "center" })).catch(() => {});
    }
    await page.screenshot({ path, timeout: 10_000 });
  } catch (e) {
    console.error(`screenshot ${name} failed: ${e.message}`);
  }
  return path;
}

/** The event log's entries as {event, dir, text}. */
export function eventLog(page) {
  return page.$$eval("#event-log .entry", (els) =>
    els.map((e) => ({ event: e.dataset.event, dir: e.dataset.dir, text: e.textContent })),
  );
}

/** Waits (bounded) for an event-log entry named `event` whose text matches `re`. */
export async function waitForLogEntry(page, event, re, timeout = 15_000) {
  await page.waitForFunction(
    ([ev, src, flags]) => {
      const r = new RegExp(src, flags);
      return [...document.querySelectorAll(`#event-log .entry[data-event="${ev}"]`)].some((e) => r.test(e.textContent));
    },
    [event, re.source, re.flags],
    { timeout },
  );
}

/** Resolves with the first `event` on a socket.io-client socket whose payload satisfies `pred`. */
export function nextEvent(socket, event, pred = () => true, ms = 15_000) {
  return within(
    ms,
    `socket event ${event}`,
    new Promise((res) => {
      const h = (...args) => {
        if (pred(...args)) {
          socket.off(event, h);
          res(args.length <= 1 ? args[0] : args);
        }
      };
      socket.on(event, h);
    }),
  );
}

/** Prints the tail of the server's log and the page console when a step fails. */
export function diagnostics({ servers = [], browser } = {}) {
  const out = [];
  for (const s of servers) if (s) out.push(`--- server ${s.url} stderr (tail) ---\n${s.stderr.split("\n").slice(-30).join("\n")}`);
  if (browser) {
    out.push(`--- page console (tail) ---\n${browser.consoleLines.slice(-30).join("\n")}`);
    if (browser.pageErrors.length) out.push(`--- page errors ---\n${browser.pageErrors.join("\n")}`);
  }
  return out.join("\n");
}

/**
 * `step(name, fn)` for one describe() whose tests build on each other: once a step fails the rest
 * are skipped, and the failing one leaves `<prefix>-FAILED-<name>.png` and, in its message, the
 * diagnostics of `parts()` = {page, servers, browser} as they are at that moment.
 */
export function stepper(prefix, parts, timeout = 60_000) {
  let failed = false;
  return function step(name, fn) {
    it(name, { timeout }, async (t) => {
      if (failed) return t.skip("an earlier step failed");
      try {
        await fn(t);
      } catch (e) {
        failed = true;
        const { page, servers, browser } = parts();
        if (page) await shot(page, `${prefix}-FAILED-${name.replace(/\W+/g, "-")}`);
        e.message += `\n${diagnostics({ servers, browser })}`;
        throw e;
      }
    });
  };
}
