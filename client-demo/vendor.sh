#!/bin/sh
# Copies the pinned socket.io-client browser bundle into vendor/ so the page works offline
# (the server embeds client-demo/ into its binary; no CDN).
# Usage: cd client-demo && npm ci && ./vendor.sh   (then commit vendor/socket.io.min.js)
set -eu
cd "$(dirname "$0")"
SRC=node_modules/socket.io-client/dist/socket.io.min.js
if [ ! -f "$SRC" ]; then
  echo "missing $SRC: run 'npm ci' in client-demo/ first" >&2
  exit 1
fi
VERSION=$(node -p "require('./node_modules/socket.io-client/package.json').version")
mkdir -p vendor
OUT=vendor/socket.io.min.js
# The bundle's banner normally says "Socket.IO vX.Y.Z"; add a version line if it does not.
if head -c 200 "$SRC" | grep -q "Socket.IO v$VERSION"; then
  cp "$SRC" "$OUT.tmp"
else
  { echo "/* socket.io-client v$VERSION (vendored by client-demo/vendor.sh) */"; cat "$SRC"; } > "$OUT.tmp"
fi
# The source map is not shipped; drop the reference so devtools does not request it.
sed -i '/^\/\/# sourceMappingURL=/d' "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "vendored socket.io-client $VERSION -> client-demo/$OUT ($(wc -c < "$OUT") bytes)"
