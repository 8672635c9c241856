/* im-server client-demo (CONTRACT §7). Plain browser JS, no build step, no framework.
 * Uses the real socket.io-client v4 from vendor/socket.io.min.js (global `io`). */
(function () {
  "use strict";

  // ---------------------------------------------------------------------------
  // Error codes (CONTRACT §5) in plain words.
  // ---------------------------------------------------------------------------
  var CODES = {
    TOKEN_MISSING: "No token was found in any enabled source (handshake auth.token, Authorization header, ?token= query, cookie); log in and pick where the token travels.",
    TOKEN_MALFORMED: "The string is not a well-formed JWT (three base64url parts) — usually truncated, quoted, URL-encoded or prefixed with \"Bearer\" twice; paste it again exactly as /auth/login returned it.",
    TOKEN_INVALID_SIGNATURE: "The signature does not match this server's secret — the token came from another server/secret or was altered; press Inspect for the likely cause and compare secret fingerprints (im-server config).",
    TOKEN_ALGORITHM_NOT_ALLOWED: "The token header's alg is not in the server's auth.algorithms (default HS256); issue the token with an allowed algorithm.",
    TOKEN_EXPIRED: "The token's exp is in the past; log in again or use auth:refresh with a newer token.",
    TOKEN_NOT_YET_VALID: "The token's nbf/iat lies in the future — the issuer's clock is ahead of the server's; fix clock sync (NTP) or wait.",
    TOKEN_CLAIMS_INVALID: "The issuer, audience or subject claim does not match auth.issuer / auth.audience or is not a user id; use a token issued by this server.",
    TOKEN_NOT_FOUND: "The JWT itself is valid but the server has no user_tokens row for it (issued by another deployment, or the database was reset); log in again on this server.",
    TOKEN_REVOKED: "The token was logged out (revoked); log in again to get a new one.",
    USER_NOT_FOUND: "The user in the token (or the message recipient) does not exist; check the user id.",
    USER_DISABLED: "The user account is disabled (is_active = false); ask an administrator to re-enable it.",
    SESSION_REPLACED: "A newer login of the same user replaced this session (auth.login_policy = kick_previous); this socket was closed on purpose.",
    AUTH_UNAVAILABLE: "The server could not reach its database to check the token, so it refused (fail closed); retry later and look at GET /health.",
    ORIGIN_DENIED: "This page's origin is not in the server's cors.origins; add it there, or open the page from the server itself.",
    INVALID_CREDENTIALS: "Wrong username or password (the server deliberately does not say which).",
    RATE_LIMITED: "Too many failed logins for this username or address; wait a while before trying again.",
    BAD_REQUEST: "The request or event payload has a missing or wrong field (the message names it), or the event is unknown.",
    FORBIDDEN: "You are authenticated but not allowed to do this (e.g. a wrong X-Api-Key, or inspecting another user's token).",
    BACKEND_UNAVAILABLE: "The app's backend behind the bridge did not answer in time, or answered 5xx / not JSON. Check that it runs at bridge.url; the server log has one line per failed call.",
    ALREADY_LOGGED_IN: "This user already has a live session and auth.login_policy = reject_new; log out the other session first.",
    INTERNAL: "An unexpected server error; the server's log has the details."
  };

  var TRANSPORT_ERRORS = {
    "xhr poll error": "The HTTP long-polling request failed before Socket.IO could talk. Candidates: CORS (this page's origin is not in cors.origins — the browser hides the reply), a proxy that does not forward /socket.io/, the wrong API base / path, or the server is down. Press “GET /debug/transport” (card 9): if that is “request blocked” too, it is CORS or the server is down.",
    "websocket error": "The WebSocket could not be opened. Candidates: a reverse proxy that does not forward the Upgrade/Connection headers, an Origin not in cors.origins, the wrong API base / path, or the server is down. Try transport “polling only”, then press “GET /debug/transport” (card 9).",
    "timeout": "The handshake did not finish within the client's timeout (20 s): the server or a proxy accepted the connection but never answered. Check the server is up and the proxy timeouts; see the transport check (card 9).",
    "server error": "The server refused the Engine.IO handshake (e.g. bad path, unsupported protocol version, or Origin not allowed); see the transport check (card 9)."
  };

  var DISCONNECT_REASONS = {
    "io server disconnect": "The server closed this socket on purpose (see the error just before, if any). With reconnection on, socket.io-client will NOT retry this one; press Connect again.",
    "io client disconnect": "You closed the socket (Disconnect button or a new Connect).",
    "ping timeout": "No ping from the server within pingInterval + pingTimeout: the network or a proxy dropped the connection silently.",
    "transport close": "The underlying connection closed (server restart, network change, proxy idle timeout).",
    "transport error": "The underlying connection failed with an error (server crash, network, proxy).",
    "parse error": "The server sent a packet the client could not parse (protocol/version mismatch?)."
  };

  // ---------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        if (!Object.prototype.hasOwnProperty.call(attrs, k)) continue;
        var v = attrs[k];
        if (v === null || v === undefined || v === false) continue;
        if (k === "text") e.textContent = v;
        else if (k === "className") e.className = v;
        else e.setAttribute(k, v === true ? "" : String(v));
      }
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function pad(n, w) { n = String(n); while (n.length < (w || 2)) n = "0" + n; return n; }
  function clock(d) {
    d = d || new Date();
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." + pad(d.getMilliseconds(), 3);
  }
  function fmtDuration(secs) {
    var neg = secs < 0; secs = Math.abs(Math.floor(secs));
    var d = Math.floor(secs / 86400), h = Math.floor(secs % 86400 / 3600), m = Math.floor(secs % 3600 / 60), s = secs % 60;
    var out = (d ? d + "d " : "") + (d || h ? h + "h " : "") + (d || h || m ? m + "m " : "") + s + "s";
    return neg ? "-" + out : out;
  }
  function fmtTime(date) {
    if (!(date instanceof Date) || isNaN(date.getTime())) return "invalid date";
    return date.toLocaleString() + " (local) · " + date.toISOString().replace(".000Z", "Z") + " (UTC)";
  }
  function parseTime(v) {
    if (v === null || v === undefined || v === "") return null;
    if (typeof v === "number") return new Date(v < 1e12 ? v * 1000 : v);
    var d = new Date(v);
    return isNaN(d.getTime()) ? null : d;
  }

  // Tokens never appear in full outside the token box.
  var JWT_RE = /^[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*$/;
  function truncToken(t) {
    if (typeof t !== "string") return t;
    if (/…\(\d+ chars\)$/.test(t)) return t; // already truncated
    if (t.length <= 12) return t.length ? t.slice(0, 4) + "…(" + t.length + " chars)" : "";
    return t.slice(0, 12) + "…(" + t.length + " chars)";
  }
  function redact(v, key) {
    if (typeof v === "string") {
      var k = (key || "").toLowerCase();
      // The log is meant to be copied into bug reports: never a password in it.
      if (k === "password" || k === "new_password" || k === "old_password") return "•••";
      if (k === "token" || k === "jwt_token" || k === "authorization" || k === "access_token" ||
          k === "refresh_token" || JWT_RE.test(v.replace(/^Bearer\s+/i, ""))) {
        return truncToken(v);
      }
      return v;
    }
    if (Array.isArray(v)) return v.map(function (x) { return redact(x, key); });
    if (v && typeof v === "object") {
      var o = {};
      Object.keys(v).forEach(function (k2) { o[k2] = redact(v[k2], k2); });
      return o;
    }
    return v;
  }
  function pretty(v) {
    if (v === undefined) return "(no payload)";
    try { return JSON.stringify(redact(v), null, 2); } catch (e) { return String(v); }
  }
  /** For the log: one line when short, indented otherwise. */
  function compact(v) {
    if (v === undefined) return "(no payload)";
    try {
      var one = JSON.stringify(redact(v));
      return one.length <= 110 ? one.replace(/,"/g, ', "').replace(/":/g, '": ') : JSON.stringify(redact(v), null, 2);
    } catch (e) { return String(v); }
  }

  // ---------------------------------------------------------------------------
  // API base
  // ---------------------------------------------------------------------------
  var params = new URLSearchParams(location.search);
  (function initBase() {
    var fromQuery = params.get("server");
    var base, note;
    if (fromQuery) {
      base = fromQuery; note = "from ?server= in this page's URL (cross-origin: the server must list " + location.origin + " in cors.origins)";
    } else if (location.origin && location.origin !== "null" && /^https?:/.test(location.protocol)) {
      base = location.origin; note = "this page's origin (same-origin)";
    } else {
      base = "http://localhost:3000"; note = "page opened from a file — defaulting to http://localhost:3000";
    }
    $("api-base").value = base.replace(/\/+$/, "");
    $("api-base-note").textContent = "API base: " + note;
  })();

  function apiBase() {
    var v = $("api-base").value.trim().replace(/\/+$/, "");
    return v || location.origin;
  }
  function baseUrlParts() {
    var b = apiBase();
    try {
      var u = new URL(b, location.href);
      var prefix = u.pathname.replace(/\/+$/, "");
      return { origin: u.origin, prefix: prefix };
    } catch (e) {
      return { origin: b, prefix: "" };
    }
  }
  function sioPath() {
    var p = $("sio-path").value.trim();
    if (p) return p;
    return baseUrlParts().prefix + "/socket.io/";
  }
  function isCrossOrigin() {
    return baseUrlParts().origin !== location.origin;
  }
  $("sio-path").placeholder = sioPath();
  $("api-base").addEventListener("input", function () {
    $("api-base-note").textContent = "API base: set by hand" + (isCrossOrigin() ? " (cross-origin: needs " + location.origin + " in cors.origins)" : "");
    $("sio-path").placeholder = baseUrlParts().prefix + "/socket.io/";
    updateConnectNote();
  });

  // Keep the sticky event log below the (sticky, variable-height) top bar.
  (function trackTopbar() {
    var bar = document.querySelector(".topbar");
    function upd() { document.documentElement.style.setProperty("--top", bar.getBoundingClientRect().height + "px"); }
    upd();
    if (window.ResizeObserver) new ResizeObserver(upd).observe(bar); else window.addEventListener("resize", upd);
  })();

  // ---------------------------------------------------------------------------
  // Event log
  // ---------------------------------------------------------------------------
  var logBox = $("event-log");
  var logLines = [];
  function explainFor(name, payload) {
    if (name === "error" && payload && typeof payload === "object" && payload.code) {
      return CODES[payload.code] ? payload.code + ": " + CODES[payload.code] : null;
    }
    return null;
  }
  /** Adds an entry; returns the element so callers can append an explanation. */
  function log(name, dir, payload, opts) {
    opts = opts || {};
    var now = new Date();
    var entry = el("div", { className: "entry dir-" + dir + (opts.level ? " lvl-" + opts.level : ""), "data-event": name, "data-dir": dir });
    var arrow = dir === "in" ? "⇠" : dir === "out" ? "⇢" : "•";
    entry.appendChild(el("div", { className: "entry-head" }, [
      el("time", { text: clock(now), datetime: now.toISOString() }),
      el("span", { className: "arrow", text: arrow, title: dir === "in" ? "from server" : dir === "out" ? "to server" : "local" }),
      el("span", { className: "ev-name", text: name }),
      opts.label ? el("span", { className: "ev-label", text: opts.label }) : null
    ]));
    var text = "";
    if (payload !== undefined && !opts.noPayload) {
      text = typeof payload === "string" ? payload : compact(payload);
      entry.appendChild(el("pre", { className: "ev-payload", text: text }));
    }
    var explain = opts.explain || explainFor(name, payload);
    if (explain) entry.appendChild(el("div", { className: "ev-explain", text: explain }));
    logBox.appendChild(entry);
    logLines.push(clock(now) + " " + arrow + " " + name + (opts.label ? " [" + opts.label + "]" : "") +
      (text ? " " + text.replace(/\s*\n\s*/g, " ") : "") + (explain ? "  — " + explain : ""));
    if ($("log-autoscroll").checked) logBox.scrollTop = logBox.scrollHeight;
    return entry;
  }
  $("clear-log-btn").addEventListener("click", function () { clear(logBox); logLines = []; });
  $("copy-log-btn").addEventListener("click", function () {
    var txt = logLines.join("\n");
    var done = function () { $("copy-log-btn").textContent = "Copied"; setTimeout(function () { $("copy-log-btn").textContent = "Copy"; }, 1200); };
    if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(txt).then(done, function () { window.prompt("Copy the log:", txt); });
    else window.prompt("Copy the log:", txt);
  });

  // ---------------------------------------------------------------------------
  // Result boxes
  // ---------------------------------------------------------------------------
  function showResult(box, kind, title, detail) {
    clear(box);
    box.className = "result " + kind;
    box.appendChild(el("div", { className: "result-title", text: title }));
    if (detail !== undefined && detail !== null) {
      if (typeof detail === "string") box.appendChild(el("div", { className: "result-detail", text: detail }));
      else box.appendChild(detail);
    }
  }
  function showHttp(box, r, okTitle) {
    if (r.networkError) { showResult(box, "err", r.networkError, r.detail); return; }
    if (r.ok) {
      showResult(box, "ok", (okTitle || "OK") + " — HTTP " + r.status + (r.json && r.json.message ? ": " + r.json.message : ""),
        r.json && r.json.data !== undefined ? el("pre", { className: "json", text: pretty(r.json.data) }) : (r.text ? el("pre", { className: "json", text: r.text }) : null));
    } else {
      var code = r.json && r.json.code ? r.json.code : "HTTP " + r.status;
      var msg = r.json && r.json.message ? r.json.message : (r.text || "(no body)");
      var frag = el("div", null, [
        el("div", { className: "result-detail", text: msg }),
        CODES[code] ? el("div", { className: "ev-explain", text: code + ": " + CODES[code] }) : null
      ]);
      showResult(box, "err", code + " — HTTP " + r.status, frag);
    }
  }

  // ---------------------------------------------------------------------------
  // HTTP
  // ---------------------------------------------------------------------------
  function sendToken() { return $("token").value.trim(); }

  function api(method, path, opts) {
    opts = opts || {};
    var url = apiBase() + path;
    var headers = { "Accept": "application/json" };
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    if (opts.bearer) {
      var t = sendToken();
      if (!t) {
        var r0 = { networkError: "No token: log in first or paste a token into the token box." };
        log("http", "local", method + " " + path + " — not sent: no token", { label: "skipped", level: "warn" });
        return Promise.resolve(r0);
      }
      headers["Authorization"] = "Bearer " + t;
    }
    try { new Headers(headers); } catch (e) {
      var r1 = { networkError: "Not sent: the token contains characters that are not allowed in an HTTP header (line breaks or non-ASCII). Clean it up in the token box." };
      log("http", "local", method + " " + path + " — " + r1.networkError, { label: "skipped", level: "err" });
      return Promise.resolve(r1);
    }
    var logBody = opts.body !== undefined ? redact(opts.body) : undefined;
    log("http", "out", logBody, { label: method + " " + path + (opts.bearer ? " (Bearer " + truncToken(headers.Authorization.slice(7)) + ")" : "") });
    var started = performance.now();
    return fetch(url, {
      method: method,
      headers: headers,
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
      mode: "cors",
      credentials: "omit",
      cache: "no-store"
    }).then(function (res) {
      return res.text().then(function (text) {
        var json = null;
        try { json = text ? JSON.parse(text) : null; } catch (e) { /* not JSON */ }
        var ms = Math.round(performance.now() - started);
        var ok = res.ok && !(json && json.success === false);
        var r = { ok: ok, status: res.status, json: json, text: json ? null : text };
        var label = method + " " + path + " → " + res.status + " (" + ms + " ms)" +
          (json && json.code ? " " + json.code : "");
        log("http", "in", json !== null ? json : (text ? text.slice(0, 500) : undefined), {
          label: label, level: ok ? null : "err",
          explain: json && json.code && CODES[json.code] ? json.code + ": " + CODES[json.code] : null
        });
        return r;
      });
    }, function (err) {
      var msg;
      if (err && err.name === "TypeError") {
        msg = isCrossOrigin()
          ? "request blocked — likely CORS: this page's origin (" + location.origin + ") is not in the server's cors.origins (or the server at " + baseUrlParts().origin + " is down / unreachable)"
          : "request failed — the server at " + baseUrlParts().origin + " is down or unreachable (network error)";
      } else {
        msg = "request failed: " + (err && err.message ? err.message : String(err));
      }
      log("http", "in", err && err.message ? err.message : String(err), { label: method + " " + path + " ✗ network", level: "err", explain: msg });
      return { networkError: msg, detail: "fetch threw " + (err && err.name ? err.name + ": " : "") + (err && err.message ? err.message : "") + " — press “GET /debug/transport” (card 9) or check the browser console." };
    });
  }

  // ---------------------------------------------------------------------------
  // 1. Login
  // ---------------------------------------------------------------------------
  var me = null; // last logged-in user
  function doLogin() {
    var body = { username: $("username").value.trim(), password: $("password").value };
    var ut = $("user-type").value.trim();
    if (ut) body.user_type = ut;
    var btn = $("login-btn");
    btn.disabled = true;
    return api("POST", "/auth/login", { body: body }).then(function (r) {
      btn.disabled = false;
      if (r.ok && r.json && r.json.data && r.json.data.token) {
        var d = r.json.data;
        me = d.user || null;
        $("token").value = d.token;
        onTokenChanged();
        var u = d.user || {};
        showResult($("login-result"), "ok", "Logged in as " + (u.username || "?") + " (id " + u.id + ", " + (u.user_type || "?") + ")",
          el("pre", { className: "json", text: pretty(d) }));
        if (u.id !== undefined && !$("presence-ids").value) $("presence-ids").value = String(u.id);
        return d.token;
      }
      showHttp($("login-result"), r);
      return null;
    });
  }
  $("login-btn").addEventListener("click", doLogin);
  $("password").addEventListener("keydown", function (e) { if (e.key === "Enter") doLogin(); });

  // ---------------------------------------------------------------------------
  // 2. Token decoding
  // ---------------------------------------------------------------------------
  var tokenExp = null, tokenIat = null;
  function b64urlDecode(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    if (/[^A-Za-z0-9+/=]/.test(s)) throw new Error("not base64url");
    while (s.length % 4) s += "=";
    var bin = atob(s);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  }
  function tokenWarnings(raw) {
    var w = [];
    if (!raw) return w;
    var unq = raw.trim().replace(/^["'`]+|["'`]+$/g, "").trim();      // without outer quotes
    var noBearer = unq.replace(/^bearer\s+/i, "");
    if (/^\s|\s$/.test(raw)) w.push("Leading or trailing whitespace/newline (trimmed when sent, but a server that does not trim rejects it).");
    if (/\s/.test(noBearer)) w.push("Whitespace inside the token — it was probably wrapped or pasted with a line break.");
    if (/["'`]/.test(raw)) w.push("Contains quotes — probably copied from JSON with the quotes; remove them.");
    if (/^bearer\s/i.test(unq)) w.push("Starts with \"Bearer \" — paste the token alone; this page adds \"Bearer \" itself (the server strips one from auth.token, but a header would have it twice).");
    if ((raw.match(/bearer/gi) || []).length > 1) w.push("\"Bearer\" appears more than once.");
    var decoded = noBearer;
    if (/%[0-9A-Fa-f]{2}/.test(noBearer)) {
      w.push("Looks URL-encoded (contains %XX) — decode it first (decodeURIComponent).");
      try { decoded = decodeURIComponent(noBearer); } catch (e) { /* keep */ }
    }
    if (/[+/=]/.test(decoded)) w.push("Contains + / or = — JWTs use base64url without padding; it may have been re-encoded or mangled.");
    var parts = decoded.split(".");
    if (parts.length !== 3) w.push("Has " + parts.length + " dot-separated part(s); a JWT has exactly 3 (header.claims.signature).");
    return w;
  }
  function renderTimes(claims) {
    var box = $("token-times");
    clear(box);
    tokenExp = null; tokenIat = null;
    if (!claims || typeof claims !== "object") return;
    [["iat", "issued (iat)"], ["nbf", "not before (nbf)"], ["exp", "expires (exp)"]].forEach(function (p) {
      var v = claims[p[0]];
      if (typeof v !== "number") return;
      var d = new Date(v * 1000);
      if (p[0] === "exp") tokenExp = d;
      if (p[0] === "iat") tokenIat = d;
      box.appendChild(el("div", { className: "time-row" }, [
        el("span", { className: "k", text: p[1] }), el("span", { className: "v", text: fmtTime(d) })
      ]));
    });
    if (tokenIat && tokenExp) {
      box.appendChild(el("div", { className: "time-row" }, [
        el("span", { className: "k", text: "lifetime" }), el("span", { className: "v", text: fmtDuration((tokenExp - tokenIat) / 1000) })
      ]));
    }
  }
  function tickCountdown() {
    var box = $("token-countdown");
    if (!tokenExp) {
      box.dataset.state = "none";
      box.textContent = sendToken() ? "No exp claim — the countdown needs a decodable token." : "";
      return;
    }
    var left = (tokenExp.getTime() - Date.now()) / 1000;
    if (left <= 0) { box.dataset.state = "expired"; box.textContent = "Expired " + fmtDuration(-left) + " ago (server leeway may still accept it for auth.leeway_secs)"; }
    else {
      box.dataset.state = left < 120 ? "soon" : "ok";
      box.textContent = "Expires in " + fmtDuration(left);
    }
  }
  function onTokenChanged() {
    var raw = $("token").value;
    var len = $("token-length");
    var wl = $("token-warnings");
    clear(wl);
    if (!raw) {
      len.textContent = "no token";
      $("token-header").textContent = "—"; $("token-claims").textContent = "—";
      renderTimes(null); tickCountdown(); updateConnectCode();
      return;
    }
    len.textContent = raw.length + " chars" + (raw.trim().length !== raw.length ? " (" + raw.trim().length + " trimmed)" : "");
    tokenWarnings(raw).forEach(function (w) { wl.appendChild(el("li", { text: w })); });
    var core = raw.trim().replace(/^["'`]+|["'`]+$/g, "").trim().replace(/^bearer\s+/i, "");
    try { core = /%[0-9A-Fa-f]{2}/.test(core) ? decodeURIComponent(core) : core; } catch (e) { /* keep */ }
    var parts = core.split(".");
    var header = null, claims = null;
    try { header = JSON.parse(b64urlDecode(parts[0])); $("token-header").textContent = JSON.stringify(header, null, 2); }
    catch (e) { $("token-header").textContent = "cannot decode header: " + e.message; }
    try {
      if (parts.length < 2) throw new Error("no claims part");
      claims = JSON.parse(b64urlDecode(parts[1]));
      $("token-claims").textContent = JSON.stringify(claims, null, 2);
    } catch (e) { $("token-claims").textContent = "cannot decode claims: " + e.message; }
    renderTimes(claims);
    tickCountdown();
    updateConnectCode();
  }
  $("token").addEventListener("input", onTokenChanged);
  $("token-clear-btn").addEventListener("click", function () { $("token").value = ""; onTokenChanged(); });
  setInterval(function () { tickCountdown(); tickBanner(); }, 1000);

  // ---------------------------------------------------------------------------
  // 3. Validate / inspect / session
  // ---------------------------------------------------------------------------
  function kv(k, v, cls) {
    return el("div", { className: "kv " + (cls || "") }, [el("span", { className: "k", text: k }), el("span", { className: "v", text: v === undefined || v === null ? "—" : String(v) })]);
  }
  function showDiagJson(obj) {
    var pre = $("diag-result");
    pre.hidden = false;
    pre.textContent = pretty(obj);
  }
  $("validate-btn").addEventListener("click", function () {
    api("GET", "/auth/validate", { bearer: true }).then(function (r) {
      var box = $("diag-summary");
      if (r.ok && r.json && r.json.data) {
        var d = r.json.data, u = d.user || {};
        clear(box); box.className = "summary ok";
        box.appendChild(el("div", { className: "result-title", text: "Valid ✓" }));
        box.appendChild(kv("user", (u.username || "?") + " (id " + u.id + ", " + (u.user_type || "?") + ")"));
        var exp = parseTime(d.expires_at);
        box.appendChild(kv("expires_at", exp ? fmtTime(exp) : d.expires_at));
        showDiagJson(r.json);
      } else {
        showHttp(box, r); box.classList.add("summary");
        if (r.json) showDiagJson(r.json); else $("diag-result").hidden = true;
      }
    });
  });
  $("inspect-btn").addEventListener("click", function () {
    var raw = $("token").value;
    api("POST", "/auth/tokens/inspect", { bearer: true, body: { token: raw } }).then(function (r) {
      var box = $("diag-summary");
      var d = r.json && r.json.data && typeof r.json.data === "object" && ("verdict" in r.json.data || "signature" in r.json.data)
        ? r.json.data : (r.json && ("verdict" in r.json || "signature" in r.json) ? r.json : null);
      if (!d) {
        showHttp(box, r); box.classList.add("summary");
        if (r.json) showDiagJson(r.json); else $("diag-result").hidden = true;
        return;
      }
      clear(box);
      var okv = d.verdict === "OK";
      box.className = "summary " + (okv ? "ok" : "err");
      box.appendChild(el("div", { className: "verdict", "data-verdict": d.verdict || "" }, [
        el("span", { className: "k", text: "verdict" }), el("strong", { text: d.verdict || "?" }),
        el("span", { className: "muted", text: d.accepted === true ? " · would be accepted" : d.accepted === false ? " · would be rejected" : "" })
      ]));
      if (!okv && CODES[d.verdict]) box.appendChild(el("div", { className: "ev-explain", text: CODES[d.verdict] }));
      var sig = d.signature || {};
      box.appendChild(kv("source", d.source));
      box.appendChild(kv("signature.status", sig.status, "hl " + (sig.status === "valid" ? "good" : sig.status === "invalid" ? "bad" : "")));
      if (sig.cause) box.appendChild(kv("signature.cause", sig.cause, "hl bad"));
      if (sig.hint) box.appendChild(kv("signature.hint", sig.hint, "hl"));
      var db = d.db || {};
      box.appendChild(kv("db.status", db.status, "hl " + (db.status === "found" ? "good" : db.status ? "bad" : "")));
      if (db.expires_at) box.appendChild(kv("db.expires_at", fmtTime(parseTime(db.expires_at) || new Date(NaN)) === "invalid date" ? db.expires_at : fmtTime(parseTime(db.expires_at))));
      if (d.user) box.appendChild(kv("user", (d.user.username || "?") + " (id " + d.user.id + ")"));
      if (Array.isArray(d.sockets)) box.appendChild(kv("live sockets", d.sockets.length));
      showDiagJson(r.json);
    });
  });
  $("session-btn").addEventListener("click", function () {
    api("GET", "/auth/session", { bearer: true }).then(function (r) {
      var box = $("diag-summary");
      showHttp(box, r, "Session"); box.classList.add("summary");
      $("diag-result").hidden = true;
    });
  });

  // ---------------------------------------------------------------------------
  // 4. Socket.IO connection
  // ---------------------------------------------------------------------------
  var socket = null;
  var connectedInfo = null;
  var lastErrorCode = null;
  var banner = null; // {kind, text, until}

  function setStatus(state, text) {
    var s = $("status");
    s.dataset.state = state;
    s.textContent = text || state;
  }
  function setBanner(kind, text, expiresAt) {
    banner = { kind: kind, text: text, expiresAt: expiresAt || null };
    tickBanner();
  }
  function tickBanner() {
    var b = $("expiry-banner");
    if (!banner) { b.hidden = true; return; }
    b.hidden = false;
    b.dataset.kind = banner.kind;
    var txt = banner.text;
    if (banner.expiresAt) {
      var left = (banner.expiresAt.getTime() - Date.now()) / 1000;
      txt += left > 0 ? " — " + fmtDuration(left) + " left" : " — expired";
    }
    if (b.firstChild && b.firstChild.nodeType === 3) b.firstChild.nodeValue = txt;
    else { clear(b); b.appendChild(document.createTextNode(txt)); var x = el("button", { className: "ghost close", "aria-label": "dismiss", text: "×" }); x.addEventListener("click", function () { banner = null; tickBanner(); }); b.appendChild(x); }
  }

  function connectOptions() {
    var src = $("token-source").value;
    var tr = $("transport").value;
    var transports = tr === "websocket" ? ["websocket"] : tr === "polling" ? ["polling"] : ["polling", "websocket"];
    var forced = false;
    var token = sendToken();
    var opts = {
      path: sioPath(),
      transports: transports,
      reconnection: $("reconnection").checked,
      forceNew: true,
      timeout: 20000
    };
    if (src === "auth") opts.auth = { token: token };
    else if (src === "header") {
      opts.extraHeaders = { Authorization: "Bearer " + token };
      if (tr !== "polling") forced = true;
      opts.transports = ["polling"];
    } else if (src === "query") opts.query = { token: token };
    return { opts: opts, forced: forced, src: src };
  }
  function nsUrl() {
    var p = baseUrlParts();
    return p.origin + "/im";
  }
  function updateConnectNote() {
    var src = $("token-source").value, tr = $("transport").value;
    var n = $("connect-note");
    var notes = [];
    if (src === "header") notes.push("Authorization header: browsers cannot set headers on a WebSocket, so socket.io-client sends extraHeaders only over HTTP long-polling — transports forced to [\"polling\"] (no upgrade)." + (tr !== "polling" ? " Your transport choice is overridden." : "") + (isCrossOrigin() ? " Cross-origin, the server's CORS must allow the Authorization header." : ""));
    if (src === "query") notes.push("Query: the token goes into the URL (?token=…) — it may end up in proxy/access logs.");
    if (src === "auth") notes.push("auth: the token travels inside the Socket.IO CONNECT packet (recommended; works on every transport).");
    if (src === "none") notes.push("No token is sent: the server should answer TOKEN_MISSING (legacy: connect → error → disconnect; strict: connect_error).");
    if (tr === "websocket" && src !== "header") notes.push("websocket only: no polling fallback; if a proxy blocks Upgrade you get \"websocket error\".");
    n.textContent = notes.join(" ");
    updateConnectCode();
  }
  function updateConnectCode() {
    var c = connectOptions();
    var shown = JSON.parse(JSON.stringify(c.opts));
    if (shown.auth) shown.auth.token = truncToken(shown.auth.token) || "";
    if (shown.query) shown.query.token = truncToken(shown.query.token) || "";
    if (shown.extraHeaders) shown.extraHeaders.Authorization = "Bearer " + (truncToken(sendToken()) || "");
    $("connect-code").textContent =
      "const socket = io(" + JSON.stringify(nsUrl()) + ", " + JSON.stringify(shown, null, 2) + ");\n" +
      "socket.on(\"connected\", info => …);   // authenticated\n" +
      "socket.on(\"error\", err => …);        // {code, message}\n" +
      "socket.on(\"connect_error\", err => …); // err.message is the code in strict mode";
  }
  ["token-source", "transport", "reconnection", "sio-path"].forEach(function (id) {
    $(id).addEventListener("change", updateConnectNote);
    $(id).addEventListener("input", updateConnectNote);
  });

  function transportName() {
    try { return socket && socket.io && socket.io.engine && socket.io.engine.transport ? socket.io.engine.transport.name : null; }
    catch (e) { return null; }
  }
  function setConnButtons(connecting) {
    $("disconnect-btn").disabled = !connecting;
    $("connect-btn").textContent = connecting ? "Reconnect (new socket)" : "Connect";
  }
  function teardown(reason) {
    if (!socket) return;
    var s = socket;
    socket = null;
    s.offAny();
    s.removeAllListeners();
    if (s.io) { s.io.removeAllListeners(); }
    s.disconnect();
    log("teardown", "local", reason || "previous socket closed");
  }

  function connect() {
    if (typeof io !== "function") {
      log("note", "local", "socket.io-client did not load (vendor/socket.io.min.js) — the page cannot connect.", { level: "err" });
      return;
    }
    teardown("closing the previous socket before a new Connect");
    connectedInfo = null;
    lastErrorCode = null;
    clear($("connected-info")); $("connected-info").className = "summary";
    var c = connectOptions();
    if (c.src !== "none" && !sendToken()) {
      log("note", "local", "No token in the token box — connecting anyway (expect TOKEN_MISSING).", { level: "warn" });
    }
    if (c.forced) log("note", "local", "Authorization header chosen: transports forced to [\"polling\"] (WebSocket cannot carry extraHeaders in a browser).", { level: "warn" });
    var shown = redact(c.opts);
    if (shown.extraHeaders) shown.extraHeaders = { Authorization: "Bearer " + truncToken(sendToken()) };
    log("io()", "local", shown, { label: nsUrl() + " · token via " + c.src });
    setStatus("connecting", "connecting…");
    setConnButtons(true);

    var s = io(nsUrl(), c.opts);
    socket = s;
    window.imDemo.socket = s;
    var mgr = s.io;

    function attachEngine() {
      var eng = mgr.engine;
      if (!eng || eng.__demoHooked) return;
      eng.__demoHooked = true;
      eng.on("upgrade", function (t) {
        log("upgrade", "local", { transport: t && t.name ? t.name : String(t) }, { label: "engine upgraded" });
        updateBadgeConnected();
      });
      eng.on("upgradeError", function (err) {
        log("upgradeError", "local", err && err.message ? err.message : String(err), { level: "warn", explain: "The WebSocket upgrade failed; the connection stays on polling. Usually a proxy that does not forward Upgrade — see the transport check (card 9)." });
      });
    }
    mgr.on("open", function () {
      log("open", "local", { transport: transportName() }, { label: "engine.io handshake done" });
      attachEngine();
    });
    mgr.on("error", function (err) {
      log("manager error", "local", errObj(err), { level: "err", explain: explainConnectError(err) });
    });
    mgr.on("reconnect_attempt", function (n) { log("reconnect_attempt", "local", { attempt: n }); setStatus("connecting", "reconnecting… (attempt " + n + ")"); });
    mgr.on("reconnect", function (n) { log("reconnect", "local", { attempts: n }); });
    mgr.on("reconnect_error", function (err) { log("reconnect_error", "local", errObj(err), { level: "warn" }); });
    mgr.on("reconnect_failed", function () { log("reconnect_failed", "local", undefined, { level: "err", explain: "All reconnection attempts failed." }); setStatus("disconnected", "disconnected"); setConnButtons(false); });

    s.on("connect", function () {
      attachEngine();
      log("connect", "in", { id: s.id, transport: transportName(), recovered: s.recovered }, { label: "namespace /im joined — waiting for \"connected\" (authentication)" });
      setStatus("authenticating", "connected, authenticating…");
    });
    // socket.active stays true after a failure even with reconnection off (the socket keeps its
    // manager subscriptions); only a manager that reconnects will actually retry.
    function willRetry() { return s.active && mgr.reconnection(); }
    s.on("connect_error", function (err) {
      log("connect_error", "in", errObj(err), { level: "err", explain: explainConnectError(err) });
      var code = errCode(err);
      var retrying = willRetry();
      if (code) { setStatus("rejected", "rejected: " + code); setBanner("err", "Connection rejected: " + code); }
      else if (!retrying) { setStatus("disconnected", "disconnected (" + (err && err.message) + ")"); }
      else setStatus("connecting", "connect_error — retrying…");
      if (!retrying) setConnButtons(false);
    });
    s.on("disconnect", function (reason, details) {
      log("disconnect", "in", details ? { reason: reason, details: errObj(details) } : { reason: reason }, {
        label: reason, level: reason === "io client disconnect" ? null : "warn",
        explain: DISCONNECT_REASONS[reason] ? reason + ": " + DISCONNECT_REASONS[reason] : null
      });
      var st = $("status").dataset.state;
      var retrying = willRetry();
      if (st !== "rejected") setStatus(retrying ? "connecting" : "disconnected", retrying ? "disconnected — reconnecting…" : "disconnected" + (lastErrorCode ? " (" + lastErrorCode + ")" : " (" + reason + ")"));
      if (!retrying) setConnButtons(false);
      if (connectedInfo) { $("connected-info").className = "summary muted-box"; }
    });

    // Every server → client event.
    s.onAny(function (event) {
      var args = Array.prototype.slice.call(arguments, 1);
      log(event, "in", args.length === 0 ? undefined : args.length === 1 ? args[0] : args);
    });
    s.on("connected", function (info) {
      connectedInfo = info || {};
      var name = info && (info.displayName || info.username) ? (info.username || info.displayName) : "?";
      updateBadgeConnected();
      var box = $("connected-info");
      clear(box); box.className = "summary ok";
      box.appendChild(el("div", { className: "result-title", text: "Authenticated ✓ as " + name + " (user " + (info && info.userId) + ")" }));
      box.appendChild(kv("userId", info && info.userId));
      box.appendChild(kv("username", info && info.username));
      box.appendChild(kv("userType", info && info.userType));
      box.appendChild(kv("displayName", info && info.displayName));
      box.appendChild(kv("socketId", info && info.socketId));
      var last = info ? info.lastMessageId : undefined;
      box.appendChild(kv("lastMessageId", last === null ? "null (no message yet)" : last));
      // Only a page that has seen nothing starts there: after a reconnect, what it missed lies
      // between the newest id it showed and this one.
      if (newestSeen === null) noteSeen(last);
      var ea = parseTime(info && info.expiresAt);
      box.appendChild(kv("expiresAt", ea ? fmtTime(ea) : info && info.expiresAt));
      var st = parseTime(info && info.serverTime);
      if (st) box.appendChild(kv("serverTime", fmtTime(st) + " · clock skew vs this browser: " + ((Date.now() - st.getTime()) / 1000).toFixed(1) + " s"));
      if (banner && banner.kind === "err") { banner = null; tickBanner(); }
      if (info && info.userId !== undefined && !$("presence-ids").value) $("presence-ids").value = String(info.userId);
    });
    s.on("error", function (err) {
      var code = err && err.code;
      if (code) {
        lastErrorCode = code;
        if (connectedInfo) setStatus("disconnected", "disconnected by server: " + code);
        else setStatus("rejected", "rejected: " + code);
        setBanner("err", "Server error " + code + (err.message ? ": " + err.message : "") + (CODES[code] ? " — " + CODES[code] : ""));
      }
    });
    s.on("token_expiring", function (p) {
      var ea = parseTime(p && p.expiresAt) || (p && typeof p.secondsLeft === "number" ? new Date(Date.now() + p.secondsLeft * 1000) : null);
      setBanner("warn", "token_expiring: the socket's token expires at " + (ea ? ea.toLocaleTimeString() : "?") + " — log in again and use auth:refresh (card 7)", ea);
    });
    s.on("message", function (m) { addChat(m, false); });
    s.on("presence", function (p) {
      var r = $("presence-result");
      showResult(r, p && p.online ? "ok" : "warn", "presence: user " + (p && p.userId) + " is " + (p && p.online ? "online" : "offline") + (p && p.at ? " (" + p.at + ")" : ""));
    });
  }

  function updateBadgeConnected() {
    if (!socket || !socket.connected || !connectedInfo) return;
    var i = connectedInfo;
    setStatus("connected", "connected as " + (i.username || i.displayName || "?") + " (#" + i.userId + ") · " + (transportName() || "?"));
  }

  function errObj(err) {
    if (!err) return err;
    if (typeof err !== "object") return String(err);
    var o = { message: err.message };
    if (err.type) o.type = err.type;
    if (err.description !== undefined) o.description = err.description && err.description.message ? err.description.message : (typeof err.description === "object" ? String(err.description) : err.description);
    if (err.context && typeof err.context === "object") {
      var ctx = err.context;
      o.context = { status: ctx.status, statusText: ctx.statusText, responseText: typeof ctx.responseText === "string" ? ctx.responseText.slice(0, 300) : undefined };
    }
    if (err.data !== undefined) o.data = err.data;
    if (err.code !== undefined) o.code = err.code;
    return o;
  }
  function errCode(err) {
    if (!err) return null;
    if (err.data && err.data.code && CODES[err.data.code]) return err.data.code;
    if (err.message && CODES[err.message]) return err.message;
    if (err.code && CODES[err.code]) return err.code;
    return null;
  }
  function explainConnectError(err) {
    var code = errCode(err);
    if (code) return code + " (strict mode rejection): " + CODES[code];
    var m = err && err.message ? String(err.message) : "";
    if (TRANSPORT_ERRORS[m]) return m + ": " + TRANSPORT_ERRORS[m];
    if (/invalid namespace/i.test(m)) return "The server has no /im namespace at this URL — wrong API base or Socket.IO path?";
    if (/xhr post error/i.test(m)) return "Sending over polling failed — proxy or CORS; see the transport check (card 9).";
    return null;
  }

  $("connect-btn").addEventListener("click", connect);
  $("disconnect-btn").addEventListener("click", function () {
    if (!socket) return;
    log("disconnect()", "out", undefined, { label: "client-initiated" });
    socket.disconnect();
    setConnButtons(false);
  });

  // Emit with ack, logging both sides (tokens redacted).
  function emitAck(event, payload, resultBox, onAck) {
    emitArgsAck(event, [payload], resultBox, onAck);
  }
  // The same with any number of arguments (the "Emit any event" card).
  function emitArgsAck(event, args, resultBox, onAck) {
    if (!socket || !socket.connected) {
      showResult(resultBox, "err", "Not connected — press Connect (card 4) first.");
      log(event, "local", "not sent: socket not connected", { level: "warn", label: "skipped" });
      return;
    }
    log(event, "out", args.length === 1 ? args[0] : args, { label: "emit (with ack)" });
    var t = socket.timeout(10000);
    t.emit.apply(t, [event].concat(args, [function (err, ack) {
      if (err) {
        log("ack", "in", "no ack for " + event + " within 10 s", { level: "err", label: event });
        showResult(resultBox, "err", "No ack within 10 s for " + event);
        return;
      }
      var bad = ack && ack.ok === false;
      log("ack", "in", ack, { label: event, level: bad ? "err" : null,
        explain: bad && ack.code && CODES[ack.code] ? ack.code + ": " + CODES[ack.code] : null });
      if (bad) {
        showResult(resultBox, "err", (ack.code || "error") + (ack.message ? ": " + ack.message : ""), CODES[ack.code] ? el("div", { className: "ev-explain", text: CODES[ack.code] }) : null);
      }
      if (onAck) onAck(ack, bad);
    }]));
  }

  function emitAny() {
    var event = $("emit-event").value.trim();
    var text = $("emit-args").value.trim();
    if (!event) { showResult($("emit-result"), "err", "Enter an event name, e.g. chat:send."); return; }
    var args;
    try {
      args = text ? JSON.parse(text) : [];
    } catch (e) {
      showResult($("emit-result"), "err", "Arguments are not JSON: " + e.message);
      return;
    }
    if (!Array.isArray(args)) args = [args];
    emitArgsAck(event, args, $("emit-result"), function (ack, bad) {
      if (!bad) showResult($("emit-result"), "ok", "ack: " + compact(ack));
    });
  }
  $("emit-btn").addEventListener("click", emitAny);
  $("emit-args").addEventListener("keydown", function (e) { if (e.key === "Enter") emitAny(); });

  // ---------------------------------------------------------------------------
  // 5. Messages
  // ---------------------------------------------------------------------------
  var seenMsgIds = {};
  // The newest message id this page has seen: where "messages:sync since" resumes.
  var newestSeen = null;
  function noteSeen(id) {
    if (typeof id !== "number" || (newestSeen !== null && id <= newestSeen)) return;
    newestSeen = id;
    $("sync-after").value = String(id);
  }
  function addChat(m, fromAck) {
    if (!m) return;
    noteSeen(m.id);
    if (m.id !== undefined && seenMsgIds[m.id]) {
      // Already shown (from our ack); just mark delivered.
      var prev = seenMsgIds[m.id];
      prev.classList.add("echoed");
      return;
    }
    var box = $("messages");
    var empty = box.querySelector(".empty");
    if (empty) box.removeChild(empty);
    var myId = connectedInfo ? connectedInfo.userId : (me ? me.id : undefined);
    var mine = myId !== undefined && m.from === myId;
    var t = parseTime(m.created_at) || new Date();
    var item = el("div", { className: "msg " + (mine ? "mine" : "theirs"), "data-id": m.id !== undefined ? m.id : "", "data-from": m.from }, [
      el("div", { className: "msg-meta", text: (mine ? "me → " + m.to : "from " + m.from + " → " + m.to) + " · " + t.toLocaleTimeString() + (m.id !== undefined ? " · #" + m.id : "") + (fromAck ? " · acked" : "") }),
      el("div", { className: "msg-body", text: m.content })
    ]);
    if (m.id !== undefined) seenMsgIds[m.id] = item;
    box.appendChild(item);
    box.scrollTop = box.scrollHeight;
  }
  function sendMessage() {
    // Ids keep the type this server gives them: numbers for its own users, strings (e.g.
    // "kefu_001") for a backend's users behind [external] tables.
    var raw = $("msg-to").value.trim();
    var stringIds = connectedInfo && typeof connectedInfo.userId === "string";
    var to = stringIds ? raw : parseInt(raw, 10);
    var content = $("msg-content").value;
    if (stringIds ? !to : !(to > 0)) { showResult($("send-result"), "err", "Enter the recipient's user id — see Online users (card 6)."); return; }
    if (!content) { showResult($("send-result"), "err", "Enter some content."); return; }
    var cmid = "demo-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 7);
    var payload = { to: to, content: content, client_msg_id: cmid };
    emitAck("send_message", payload, $("send-result"), function (ack, bad) {
      if (bad) return;
      showResult($("send-result"), "ok", "ack: ok · id " + (ack && ack.id) + " · created_at " + (ack && ack.created_at));
      addChat({ id: ack && ack.id, from: connectedInfo ? connectedInfo.userId : undefined, to: to, content: content, created_at: ack && ack.created_at, client_msg_id: cmid }, true);
      $("msg-content").value = "";
    });
  }
  $("send-btn").addEventListener("click", sendMessage);
  $("sync-btn").addEventListener("click", function () {
    var raw = $("sync-after").value.trim();
    var after = raw === "" ? 0 : Number(raw);
    if (!(after >= 0) || Math.floor(after) !== after) { showResult($("sync-result"), "err", "Enter a message id (a whole number ≥ 0), e.g. connected.lastMessageId."); return; }
    emitAck("messages:sync", { after_id: after, limit: 100 }, $("sync-result"), function (ack, bad) {
      if (bad) return;
      var list = ack && Array.isArray(ack.messages) ? ack.messages : [];
      list.forEach(function (m) { addChat(m, false); });
      showResult($("sync-result"), "ok", list.length + " message(s) after #" + after + (ack.more ? " — more: true, click again for the next page" : " — up to date"));
    });
  });
  $("msg-content").addEventListener("keydown", function (e) { if (e.key === "Enter") sendMessage(); });

  // ---------------------------------------------------------------------------
  // 6. Presence + online users
  // ---------------------------------------------------------------------------
  function presenceIds() {
    return $("presence-ids").value.split(/[\s,;]+/).filter(Boolean).map(Number).filter(function (n) { return n > 0 && Math.floor(n) === n; });
  }
  $("presence-sub-btn").addEventListener("click", function () {
    var ids = presenceIds();
    if (!ids.length) { showResult($("presence-result"), "err", "Enter one or more user ids, e.g. 1, 2"); return; }
    emitAck("presence:subscribe", { userIds: ids }, $("presence-result"), function (ack, bad) {
      if (bad) return;
      var online = ack && Array.isArray(ack.online) ? ack.online : [];
      showResult($("presence-result"), "ok", "Subscribed to " + ids.join(", ") + " — online now: " + (online.length ? online.join(", ") : "none") + ". Changes arrive as presence events.");
    });
  });
  $("presence-unsub-btn").addEventListener("click", function () {
    var ids = presenceIds();
    if (!ids.length) { showResult($("presence-result"), "err", "Enter one or more user ids."); return; }
    emitAck("presence:unsubscribe", { userIds: ids }, $("presence-result"), function (ack, bad) {
      if (!bad) showResult($("presence-result"), "ok", "Unsubscribed from " + ids.join(", "));
    });
  });
  function loadOnline() {
    var ut = $("online-user-type").value.trim();
    api("GET", "/auth/online" + (ut ? "?user_type=" + encodeURIComponent(ut) : ""), { bearer: true }).then(function (r) {
      var wrap = $("online-users");
      clear(wrap);
      if (!(r.ok && r.json && r.json.data)) { showHttp($("online-result"), r); return; }
      var users = Array.isArray(r.json.data.users) ? r.json.data.users : [];
      showResult($("online-result"), "ok", users.length + " user(s) online" + (ut ? " of type " + ut : ""));
      if (!users.length) return;
      var tbody = el("tbody");
      users.forEach(function (u) {
        var b = el("button", { className: "ghost small", text: "message", "data-user-id": u.id });
        b.addEventListener("click", function () { $("msg-to").value = u.id; $("msg-content").focus(); });
        var since = parseTime(u.since);
        tbody.appendChild(el("tr", { "data-user-id": u.id }, [
          el("td", { text: String(u.id) }), el("td", { text: u.username || "" }), el("td", { text: u.user_type || "" }),
          el("td", { text: u.display_name || "" }), el("td", { text: String(u.sockets !== undefined ? u.sockets : "") }),
          el("td", { text: since ? since.toLocaleTimeString() : (u.since || "") }), el("td", null, [b])
        ]));
      });
      wrap.appendChild(el("table", { className: "users" }, [
        el("thead", null, [el("tr", null, ["id", "username", "type", "display name", "sockets", "since", ""].map(function (h) { return el("th", { text: h }); }))]),
        tbody
      ]));
    });
  }
  $("online-btn").addEventListener("click", loadOnline);

  // ---------------------------------------------------------------------------
  // 7. auth:refresh
  // ---------------------------------------------------------------------------
  function refreshWith(token) {
    emitAck("auth:refresh", { token: token }, $("refresh-result"), function (ack, bad) {
      if (bad) return;
      var ea = parseTime(ack && ack.expiresAt);
      showResult($("refresh-result"), "ok", "Socket now uses the new token — expires " + (ea ? fmtTime(ea) : (ack && ack.expiresAt)));
      if (banner && banner.kind === "warn") { banner = null; tickBanner(); }
      if (connectedInfo && ack && ack.expiresAt) connectedInfo.expiresAt = ack.expiresAt;
    });
  }
  $("refresh-btn").addEventListener("click", function () {
    var t = sendToken();
    if (!t) { showResult($("refresh-result"), "err", "The token box is empty — log in again or paste a newer token."); return; }
    refreshWith(t);
  });
  $("relogin-refresh-btn").addEventListener("click", function () {
    if (!socket || !socket.connected) { showResult($("refresh-result"), "err", "Not connected — press Connect (card 4) first."); return; }
    doLogin().then(function (t) { if (t) refreshWith(t); else showResult($("refresh-result"), "err", "Login failed — see card 1."); });
  });

  // ---------------------------------------------------------------------------
  // 8. Logout
  // ---------------------------------------------------------------------------
  $("logout-btn").addEventListener("click", function () {
    var wasConnected = !!(socket && socket.connected);
    api("POST", "/auth/logout", { bearer: true }).then(function (r) {
      showHttp($("logout-result"), r, "Logged out");
      if (r.ok) {
        var box = $("logout-result");
        box.appendChild(el("div", { className: "result-detail", text: wasConnected
          ? "The token is revoked: the event log should now show error {code:\"TOKEN_REVOKED\"} followed by disconnect (io server disconnect)."
          : "The token is revoked; connecting with it now gives TOKEN_REVOKED." }));
      }
    });
  });

  // ---------------------------------------------------------------------------
  // 9. Transport check
  // ---------------------------------------------------------------------------
  function isStringArray(v) { return Array.isArray(v) && v.length > 0 && v.every(function (x) { return typeof x === "string"; }); }
  /** Pulls every array of strings out of obj (with its path) and returns {lists, rest}. */
  function splitLists(obj, path, lists) {
    if (isStringArray(obj)) { lists.push({ path: path || "(root)", items: obj }); return undefined; }
    if (Array.isArray(obj)) return obj.map(function (x, i) { return splitLists(x, path + "[" + i + "]", lists); });
    if (obj && typeof obj === "object") {
      var o = {};
      Object.keys(obj).forEach(function (k) {
        var r = splitLists(obj[k], path ? path + "." + k : k, lists);
        if (r !== undefined) o[k] = r;
      });
      return o;
    }
    return obj;
  }
  $("transport-check-btn").addEventListener("click", function () {
    api("GET", "/debug/transport").then(function (r) {
      var box = $("transport-result");
      if (!(r.ok && r.json)) { showHttp(box, r); return; }
      var data = r.json && r.json.data !== undefined && r.json.success !== undefined ? r.json.data : r.json;
      var lists = [];
      var rest = splitLists(data, "", lists);
      lists.sort(function (a, b) { return (/hint/i.test(b.path) ? 1 : 0) - (/hint/i.test(a.path) ? 1 : 0); });
      var frag = el("div");
      if (!lists.some(function (l) { return /hint/i.test(l.path); })) {
        frag.appendChild(el("p", { className: "good-note", text: "No hints: the server saw nothing misconfigured for this request." }));
      }
      lists.forEach(function (l) {
        var hint = /hint/i.test(l.path);
        frag.appendChild(el("h3", { text: l.path }));
        frag.appendChild(el("ul", { className: hint ? "hints" : "plain-list", "data-path": l.path }, l.items.map(function (s) { return el("li", { text: s }); })));
      });
      frag.appendChild(el("h3", { text: "everything else" }));
      frag.appendChild(el("pre", { className: "json", text: JSON.stringify(rest, null, 2) }));
      showResult(box, "ok", "What the server saw of this page's request" + (r.json.message ? " — " + r.json.message : ""), frag);
    });
  });

  // ---------------------------------------------------------------------------
  // Error code table
  // ---------------------------------------------------------------------------
  (function fillCodes() {
    var tb = $("error-codes").querySelector("tbody");
    Object.keys(CODES).forEach(function (c) {
      tb.appendChild(el("tr", { "data-code": c }, [el("td", null, [el("code", { text: c })]), el("td", { text: CODES[c] })]));
    });
    Object.keys(TRANSPORT_ERRORS).forEach(function (m) {
      tb.appendChild(el("tr", { "data-code": m, className: "transport-row" }, [el("td", null, [el("code", { text: "connect_error \"" + m + "\"" })]), el("td", { text: TRANSPORT_ERRORS[m] })]));
    });
  })();

  // ---------------------------------------------------------------------------
  // Start
  // ---------------------------------------------------------------------------
  window.imDemo = {
    socket: null,
    codes: CODES,
    apiBase: apiBase,
    redact: redact,
    truncToken: truncToken
  };
  var ver = typeof io === "function" ? (io.protocol !== undefined ? "socket.io-client loaded (protocol v" + io.protocol + ")" : "socket.io-client loaded") : "socket.io-client NOT loaded";
  $("lib-version").textContent = ver + " · page origin " + location.origin;
  onTokenChanged();
  updateConnectNote();
  setStatus("disconnected", typeof io === "function" ? "disconnected" : "socket.io-client missing");
  log("page", "local", { apiBase: apiBase(), socketIoPath: sioPath(), pageOrigin: location.origin, client: ver }, { label: "ready" });
})();
