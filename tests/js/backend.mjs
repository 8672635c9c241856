// A small stand-in for the team's existing NestJS backend (field report 000): its own MariaDB
// database `im_system`-style, HTTP-less login that signs an HS256 JWT with jsonwebtoken and
// records the RAW token in `user_tokens`, logout that sets `is_revoked = 1`, string user ids
// (`kefu_001`, report 004). im-server only reads these tables, through a SELECT-only user.

import { randomUUID } from "node:crypto";
import jwt from "jsonwebtoken";
import mysql from "mysql2/promise";

/** The MariaDB server the suite shares (scripts/services.sh), e.g. mysql://im:im@127.0.0.1:13306 */
export function mysqlServerUrl() {
  const url = process.env.IM_TEST_MYSQL_URL;
  if (!url)
    throw new Error("IM_TEST_MYSQL_URL is not set: run through scripts/test.sh (it starts MariaDB on loopback)");
  return url;
}

/**
 * Create a fresh database with report 000's tables, seed users, and a reader granted SELECT on
 * the two tables only. Returns the backend: {readerUrl, login(id), logout(token), setActive(id, on),
 * query(sql, args), close()}.
 */
export async function startBackend(secret, users) {
  const server = new URL(mysqlServerUrl());
  const db = `im_js_${randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const admin = await mysql.createConnection({
    host: server.hostname, port: Number(server.port), user: decodeURIComponent(server.username),
    password: decodeURIComponent(server.password), multipleStatements: false,
  });
  await admin.query(`CREATE DATABASE ${db} CHARACTER SET utf8mb4`);
  await admin.query(`USE ${db}`);
  await admin.query(`CREATE TABLE users (
    id VARCHAR(64) NOT NULL PRIMARY KEY, username VARCHAR(64) NOT NULL,
    password VARCHAR(255) NOT NULL DEFAULT '', user_type VARCHAR(32) NOT NULL DEFAULT 'kefu',
    display_name VARCHAR(128) NULL, email VARCHAR(128) NULL,
    is_active TINYINT(1) NOT NULL DEFAULT 1, created_at DATETIME DEFAULT CURRENT_TIMESTAMP)`);
  await admin.query(`CREATE TABLE user_tokens (
    id INT AUTO_INCREMENT PRIMARY KEY, user_id VARCHAR(64) NOT NULL, token TEXT NOT NULL,
    is_revoked TINYINT(1) NOT NULL DEFAULT 0, expires_at DATETIME NOT NULL,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP)`);
  for (const u of users)
    await admin.execute(
      "INSERT INTO users (id, username, user_type, display_name) VALUES (?, ?, ?, ?)",
      [u.id, u.username, u.type ?? "kefu", u.displayName ?? null],
    );
  const reader = `r_${db.slice(6, 18)}`;
  const readerPw = "reader-pw-" + randomUUID().slice(0, 8);
  await admin.query(`CREATE USER '${reader}'@'127.0.0.1' IDENTIFIED BY '${readerPw}'`);
  await admin.query(`GRANT SELECT ON ${db}.user_tokens TO '${reader}'@'127.0.0.1'`);
  await admin.query(`GRANT SELECT ON ${db}.users TO '${reader}'@'127.0.0.1'`);

  const utc = (d) => d.toISOString().slice(0, 19).replace("T", " ");
  return {
    readerUrl: `mysql://${reader}:${readerPw}@${server.host}/${db}`,
    /** The backend's login: sign, then record the raw token (24 h, as report 000's backend does). */
    async login(id, { expiresInSecs = 86400 } = {}) {
      const user = users.find((u) => u.id === id);
      const token = jwt.sign({ sub: id, username: user?.username, user_type: user?.type }, secret, {
        algorithm: "HS256", expiresIn: expiresInSecs, jwtid: randomUUID(),
      });
      await admin.execute(
        "INSERT INTO user_tokens (user_id, token, is_revoked, expires_at) VALUES (?, ?, 0, ?)",
        [id, token, utc(new Date(Date.now() + expiresInSecs * 1000))],
      );
      return token;
    },
    /** A token signed but never recorded (a stale one from another environment). */
    signOnly(id) {
      return jwt.sign({ sub: id }, secret, { algorithm: "HS256", expiresIn: 3600 });
    },
    async logout(token) {
      await admin.execute("UPDATE user_tokens SET is_revoked = 1 WHERE token = ?", [token]);
    },
    async setActive(id, on) {
      await admin.execute("UPDATE users SET is_active = ? WHERE id = ?", [on ? 1 : 0, id]);
    },
    async close() {
      await admin.query(`DROP USER '${reader}'@'127.0.0.1'`).catch(() => {});
      await admin.query(`DROP DATABASE ${db}`).catch(() => {});
      await admin.end();
    },
  };
}
