#!/bin/sh
# Copies the pinned @socket.io/admin-ui build (its ui/dist) and the pinned Material Design Icons
# font it loads into vendor/, so /admin/ works with no internet: the server embeds vendor/ into
# its binary (src/admin/ui.rs includes vendor/assets.rs, written here).
# Usage: cd admin-ui && npm ci && ./vendor.sh   (then commit vendor/)
# To move to another version: change the pins in package.json, npm install, ./vendor.sh.
#
# The only change to the UI's files: index.html loads the icon font from vendor/mdi/ instead of
# a CDN (`@mdi/font@latest`), and drops the Google Fonts stylesheet (the UI falls back to the
# system sans-serif). Source maps are not shipped.
set -eu
cd "$(dirname "$0")"
UI=node_modules/@socket.io/admin-ui
MDI=node_modules/@mdi/font
for d in "$UI/ui/dist" "$MDI/css"; do
  if [ ! -d "$d" ]; then
    echo "missing $d: run 'npm ci' in admin-ui/ first" >&2
    exit 1
  fi
done
UI_VERSION=$(node -p "require('./$UI/package.json').version")
MDI_VERSION=$(node -p "require('./$MDI/package.json').version")

rm -rf vendor.tmp
mkdir -p vendor.tmp/mdi/css vendor.tmp/mdi/fonts
(cd "$UI/ui/dist" && find . -type f ! -name '*.map' | sort) | while read -r f; do
  mkdir -p "vendor.tmp/$(dirname "$f")"
  cp "$UI/ui/dist/$f" "vendor.tmp/$f"
done
find vendor.tmp -name '*.js' -exec sed -i '/^\/\/# sourceMappingURL=/d' {} +
find vendor.tmp -name '*.css' -exec sed -i 's#/\*\# sourceMappingURL=[^*]*\*/##' {} +

cp "$MDI/css/materialdesignicons.min.css" vendor.tmp/mdi/css/
sed -i 's#/\*\# sourceMappingURL=[^*]*\*/##' vendor.tmp/mdi/css/materialdesignicons.min.css
# Browsers take the first format they support: woff2 (woff for old ones); eot/ttf are not shipped.
cp "$MDI/fonts/materialdesignicons-webfont.woff2" "$MDI/fonts/materialdesignicons-webfont.woff" \
  vendor.tmp/mdi/fonts/

INDEX=vendor.tmp/index.html
grep -q 'cdn.jsdelivr.net/npm/@mdi/font@latest/css/materialdesignicons.min.css' "$INDEX" || {
  echo "index.html no longer loads the icon font from the CDN: check vendor.sh against this version" >&2
  exit 1
}
sed -i \
  -e 's#<link rel="stylesheet" href="https://fonts.googleapis.com/[^"]*">##' \
  -e 's#https://cdn.jsdelivr.net/npm/@mdi/font@latest/css/materialdesignicons.min.css#mdi/css/materialdesignicons.min.css#' \
  "$INDEX"
if grep -q 'https://' "$INDEX"; then
  echo "index.html still loads something from the internet:" >&2
  grep -o 'https://[^"]*' "$INDEX" >&2
  exit 1
fi
echo "@socket.io/admin-ui $UI_VERSION, @mdi/font $MDI_VERSION" > vendor.tmp/VERSION

# The Rust list of embedded files (path under /admin/, MIME type, bytes).
mime() {
  case $1 in
    *.html) echo "text/html; charset=utf-8" ;;
    *.js) echo "text/javascript; charset=utf-8" ;;
    *.css) echo "text/css; charset=utf-8" ;;
    *.svg) echo "image/svg+xml" ;;
    *.png) echo "image/png" ;;
    *.woff2) echo "font/woff2" ;;
    *.woff) echo "font/woff" ;;
    *) echo "application/octet-stream" ;;
  esac
}
{
  echo "// Written by admin-ui/vendor.sh ($(cat vendor.tmp/VERSION)); do not edit."
  echo "&["
  (cd vendor.tmp && find . -type f ! -name VERSION ! -name assets.rs | sed 's#^\./##' | LC_ALL=C sort) | while read -r f; do
    echo "    Asset { path: \"$f\", mime: \"$(mime "$f")\", body: include_bytes!(\"$f\") },"
  done
  echo "]"
} > vendor.tmp/assets.rs

rm -rf vendor
mv vendor.tmp vendor
echo "vendored $(cat vendor/VERSION) -> admin-ui/vendor ($(du -sk vendor | cut -f1) KiB)"
