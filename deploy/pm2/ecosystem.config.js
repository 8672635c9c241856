// PM2: im-server as two processes in fork mode, one per port, behind nginx (deploy/nginx/im-server.conf).
//
//   cp deploy/pm2/im-server.env.example deploy/pm2/im-server.env    # then edit it; chmod 600
//   pm2 start deploy/pm2/ecosystem.config.js && pm2 save
//   pm2 reload deploy/pm2/ecosystem.config.js --update-env          # after a new binary or config
//
// Every process gets the SAME settings from ONE file (IM_ENV_FILE, default deploy/pm2/im-server.env,
// KEY=value lines), so the nodes cannot drift (compare `config_fingerprint` in GET /health). Only two
// values differ per process and are set here: PORT and IM_SERVER__NODE_ID (= "<hostname>-<port>").
//
// Knobs, read from the environment of the `pm2` command (all optional):
//   IM_SERVER_BIN   the binary                     [/usr/local/bin/im-server]
//   IM_ENV_FILE     the shared settings file       [deploy/pm2/im-server.env next to this file]
//   IM_PORTS        one process per port           [3001,3002] (must match deploy/nginx/im-server.conf)
//   IM_WORKDIR      working directory (im-server also reads im-server.toml / .env there) [/var/lib/im-server]
//   IM_LOG_DIR      PM2 log files                  [/var/log/im-server]
//
// Stopping: PM2 sends SIGINT (im-server drains like on SIGTERM: closes sockets so clients reconnect to
// the other node, finishes requests within server.shutdown_timeout_secs, exits 0) and SIGKILLs after
// kill_timeout — derived below from IM_SERVER__SHUTDOWN_TIMEOUT_SECS so it is always larger.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");

const BIN = process.env.IM_SERVER_BIN || "/usr/local/bin/im-server";
const ENV_FILE = path.resolve(process.env.IM_ENV_FILE || path.join(__dirname, "im-server.env"));
const PORTS = (process.env.IM_PORTS || "3001,3002").split(",").map((p) => p.trim()).filter(Boolean);
const WORKDIR = path.resolve(process.env.IM_WORKDIR || "/var/lib/im-server");
const LOG_DIR = path.resolve(process.env.IM_LOG_DIR || "/var/log/im-server");

/** KEY=value lines; `#` comments, blank lines, optional `export `, optional '…' / "…" quotes. */
function readEnvFile(file) {
  let text;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(
      `im-server ecosystem: cannot read the shared settings file ${file} (${e.code || e.message}). ` +
        `Copy deploy/pm2/im-server.env.example to it, or point IM_ENV_FILE at yours.`,
    );
  }
  const env = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new Error(`im-server ecosystem: ${file}:${i + 1}: expected KEY=value`);
    let v = m[2];
    const q = /^(['"])(.*)\1$/.exec(v);
    if (q) v = q[1] === '"' ? q[2].replace(/\\n/g, "\n").replace(/\\(["\\])/g, "$1") : q[2];
    else v = v.replace(/\s+#.*$/, "");
    env[m[1]] = v;
  });
  for (const k of ["PORT", "IM_SERVER__PORT", "IM_SERVER__NODE_ID"]) {
    if (k in env) {
      throw new Error(`im-server ecosystem: ${file} sets ${k}; it is per process — set IM_PORTS instead`);
    }
  }
  return env;
}

const shared = readEnvFile(ENV_FILE);
const shutdownSecs = Number(shared.IM_SERVER__SHUTDOWN_TIMEOUT_SECS || 10);
if (!Number.isFinite(shutdownSecs) || shutdownSecs < 0) {
  throw new Error(`im-server ecosystem: IM_SERVER__SHUTDOWN_TIMEOUT_SECS=${shared.IM_SERVER__SHUTDOWN_TIMEOUT_SECS} is not a number`);
}

fs.mkdirSync(WORKDIR, { recursive: true });
fs.mkdirSync(LOG_DIR, { recursive: true });
const host = os.hostname().split(".")[0];

module.exports = {
  apps: PORTS.map((port) => ({
    name: `im-server-${port}`,
    script: BIN,
    args: ["serve"],
    interpreter: "none", // a native binary, not a node script
    exec_mode: "fork",
    instances: 1,
    cwd: WORKDIR,
    // Nothing from the shell that runs `pm2` may configure the server behind the file's back:
    // drop inherited variables whose names contain these (the file below is the one source).
    filter_env: ["IM_", "DATABASE_URL", "REDIS_URL", "JWT_SECRET", "FRONTEND_URL", "NODE_ENV", "PORT", "HOST", "RUST_LOG"],
    env: {
      ...shared,
      PORT: String(port),
      IM_SERVER__NODE_ID: `${host}-${port}`,
    },
    // Graceful stop: server.shutdown_timeout_secs to drain, plus 5 s margin, then SIGKILL.
    kill_timeout: (shutdownSecs + 5) * 1000,
    autorestart: true,
    min_uptime: "5s",
    max_restarts: 10,
    restart_delay: 1000,
    exp_backoff_restart_delay: 200,
    // im-server writes its log (one line per event, timestamped) to stderr; stdout has the startup URL.
    out_file: path.join(LOG_DIR, `im-server-${port}.out.log`),
    error_file: path.join(LOG_DIR, `im-server-${port}.err.log`),
    merge_logs: true, // no "-<pm_id>" suffix: one stable file per app across restarts
    vizion: false,
  })),
};
