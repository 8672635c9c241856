// bench/external-backend.mjs NODE_MODULES_DIR DB TOKENS_FILE USERS SECRET
// Plays the existing backend for the `[external]` rows of compare.sh: a SQLite file with report
// 000's tables (string user ids, raw tokens, is_revoked, expires_at), USERS users and one token
// each (jsonwebtoken, HS256, 24 h), written as `username<TAB>token` lines for loadgen
// --tokens-file.
import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const [modules, dbPath, tokensPath, usersArg, secret] = process.argv.slice(2);
const require = createRequire(join(modules, "x.js"));
const Database = require("better-sqlite3");
const jwt = require("jsonwebtoken");

const db = new Database(dbPath);
db.pragma("journal_mode = WAL");
db.exec(`CREATE TABLE users (id TEXT PRIMARY KEY, username TEXT NOT NULL, user_type TEXT NOT NULL DEFAULT 'user',
           display_name TEXT, is_active INTEGER NOT NULL DEFAULT 1);
         CREATE TABLE user_tokens (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, token TEXT NOT NULL,
           is_revoked INTEGER NOT NULL DEFAULT 0, expires_at TEXT NOT NULL);
         CREATE INDEX idx_user_tokens_token ON user_tokens (token);`);
const addUser = db.prepare("INSERT INTO users (id, username) VALUES (?, ?)");
const addToken = db.prepare("INSERT INTO user_tokens (user_id, token, expires_at) VALUES (?, ?, ?)");
const expires = new Date(Date.now() + 86_400_000).toISOString().slice(0, 19).replace("T", " ");
const lines = [];
db.transaction(() => {
  for (let i = 1; i <= Number(usersArg); i++) {
    const id = `bench_${i}`, username = `bench${i}`;
    const token = jwt.sign({ sub: id, username }, secret, { algorithm: "HS256", expiresIn: 86_400 });
    addUser.run(id, username);
    addToken.run(id, token, expires);
    lines.push(`${username}\t${token}`);
  }
})();
db.close();
writeFileSync(tokensPath, lines.join("\n") + "\n");
