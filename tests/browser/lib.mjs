// Shared helpers for the browser suite: the real im-server binary in a temp dir, a tiny static
// server for client-demo/ on a second origin, Debian's headless Chromium through playwright-core,
// screenshots, and bounded waits. Everything started here is stopped by `cleanup()` — and, as a
// last resort, synchronously when the node process exits.

import { it } from "node:test";
import { createServer } from "node:http";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, existsSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { http, startImServer } from "../lib/server.mjs";

export { http };

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

/** Rejects after `ms` with `what` in the message; clears its timer either way. */
export function within(ms, what, promise) {
  let t;
  const timeout = new Promise((_, rej) => {
    t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(t));
}

/**
 * `im-server serve` on 127.0.0.1:0 in a fresh temp dir with its own SQLite file
 * (tests/lib/server.mjs). `env` adds or overrides variables (`undefined` removes one). Resolves
 * once the "listening on" line is printed.
 */
export function startServer(env = {}) {
  return startImServer({ bin: SERVER_BIN, jwtSecret: JWT_SECRET, tmpPrefix: "im-browser-", env });
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
