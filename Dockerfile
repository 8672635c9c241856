# syntax=docker/dockerfile:1
# im-server container image: built with the pinned toolchain, run as a non-root user.
#
#   docker build -t im-server .
#   docker run -d --name im -p 3000:3000 -v im-data:/data \
#       -e JWT_SECRET="$(openssl rand -base64 48)" im-server
#
# The image defaults to the production profile (no demo users, no CORS unless FRONTEND_URL is set, a
# JWT secret of ≥ 32 bytes required). Create users with `docker exec im im-server user add …`, or try
# the demo users with -e NODE_ENV=development. The two-node shape with Redis, PostgreSQL and nginx is
# docker-compose.yml; see README "Deploy".

# ---- build -------------------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /build
# rustls (no OpenSSL) and bundled SQLite: the only native code is C built by gcc, which this image
# already has — no pkg-config or -dev packages needed.
COPY . .
# Cargo.lock is honoured (--locked); the registry and git caches survive between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    cargo build --release --locked --bin im-server \
 && strip target/release/im-server \
 && target/release/im-server --version

# ---- run ---------------------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: TLS to managed databases / Redis; curl: the HEALTHCHECK below.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 im \
 && useradd --system --uid 10001 --gid im --home-dir /data --no-create-home --shell /usr/sbin/nologin im \
 && mkdir -p /data \
 && chown im:im /data
COPY --from=builder /build/target/release/im-server /usr/local/bin/im-server

# /data holds the SQLite file (and, optionally, an im-server.toml or .env the server reads from its
# working directory). With DATABASE_URL pointing at PostgreSQL/MariaDB the volume stays empty.
WORKDIR /data
VOLUME /data
ENV HOST=0.0.0.0 \
    PORT=3000 \
    DATABASE_URL=sqlite:///data/im.db?mode=rwc \
    NODE_ENV=production
EXPOSE 3000
USER 10001:10001

# /health pings the database (and Redis when configured): 503 → unhealthy. ${PORT} follows an override.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${PORT:-3000}/health" >/dev/null || exit 1

# Exec form: im-server is PID 1 and receives the SIGTERM itself (it installs its own handlers): it
# closes every socket, drains within server.shutdown_timeout_secs (default 10 s) and exits 0. Docker
# waits 10 s before SIGKILL by default: give it room with `docker stop -t 20` / stop_grace_period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/im-server"]
CMD ["serve"]
