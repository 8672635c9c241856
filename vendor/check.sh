#!/usr/bin/env bash
# vendor/check.sh — proves that each vendored crate (vendor/<crate> with a vendor/<crate>.patch:
# engineioxide, socketioxide) is the crates.io release plus exactly its patch: reverse-applying
# the patch to a copy of vendor/<crate> must give the pristine release, byte for byte (apart from
# the files the patch itself excludes with -x). Fails loudly, with the difference, otherwise.
# scripts/test.sh runs it in its build stage.
#
#   bash vendor/check.sh            every vendor/*.patch
#   bash vendor/check.sh CRATE      one of them
#
# The release comes from crates.io through cargo (a throwaway project in a temp dir that depends
# on `engineioxide = "=<version of vendor/engineioxide>"`, `cargo fetch`, then the .crate file
# from cargo's registry cache): no other network, and none at all when cargo already has it.
# Works for any correct patch: the excluded names are read from the patch's own diff lines.
set -euo pipefail
{

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
log() { lib_log vendor "$*"; }
die() {
    lib_err vendor "$*" || true
    exit 1
}

if (($# == 0)); then
    for p in "$ROOT"/vendor/*.patch; do
        bash "${BASH_SOURCE[0]}" "$(basename "$p" .patch)" || exit 1
    done
    exit 0
fi
CRATE=$1
VENDORED=$ROOT/vendor/$CRATE
PATCH=$ROOT/vendor/$CRATE.patch
[[ -d $VENDORED && -f $PATCH ]] || die "need $VENDORED and $PATCH"
command -v patch >/dev/null 2>&1 || lib_apt_install patch || die "GNU patch is needed"
VERSION=$(awk -F'"' '/^\[package\]/ {p = 1} p && /^version = / {print $2; exit}' "$VENDORED/Cargo.toml")
[[ -n $VERSION ]] || die "no [package] version in $VENDORED/Cargo.toml"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/im-vendor-check.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# 1. The pristine release, through cargo. The workspace's Cargo.lock seeds the throwaway
#    project, so cargo keeps the versions it already has (nothing new to download but the crate).
mkdir -p "$TMP/probe/src"
cat >"$TMP/probe/Cargo.toml" <<EOF
[package]
name = "vendor-check-probe"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
$CRATE = "=$VERSION"

[workspace]
EOF
: >"$TMP/probe/src/lib.rs"
cp "$ROOT/Cargo.lock" "$TMP/probe/Cargo.lock"
if ! (cd "$TMP/probe" && cargo fetch --offline -q 2>/dev/null); then
    log "cargo fetch $CRATE $VERSION (crates.io)"
    (cd "$TMP/probe" && cargo fetch -q) || die "cargo fetch of $CRATE $VERSION failed"
fi
CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
CRATE_FILE=$(find "$CARGO_HOME_DIR/registry/cache" -name "$CRATE-$VERSION.crate" -print -quit 2>/dev/null)
[[ -n $CRATE_FILE ]] || die "cargo fetched $CRATE $VERSION but no $CRATE-$VERSION.crate is in $CARGO_HOME_DIR/registry/cache"
tar -xzf "$CRATE_FILE" -C "$TMP"
RELEASE=$TMP/$CRATE-$VERSION
[[ -f $RELEASE/Cargo.toml ]] || die "$CRATE_FILE did not unpack to $RELEASE"

# 2. The patch's excluded names (the -x options of its `diff -ruN` lines).
mapfile -t EXCLUDES < <(grep -m1 '^diff ' "$PATCH" | grep -oE ' -x [^ ]+' | sed 's/^ -x //')
log "release $CRATE $VERSION from $(basename "$(dirname "$CRATE_FILE")"); patch excludes: ${EXCLUDES[*]:-none}"

# 3. A copy of the vendored tree with the patch reversed: no fuzz, no offset surprises, files the
#    patch created are removed (-E), nothing left behind (.orig/.rej).
cp -a "$VENDORED" "$TMP/reversed"
if ! patch -R -p1 -E --fuzz=0 --no-backup-if-mismatch -s -d "$TMP/reversed" <"$PATCH" >"$TMP/patch.log" 2>&1; then
    cat "$TMP/patch.log" >&2
    die "vendor/$CRATE.patch does not reverse-apply cleanly to vendor/$CRATE: the patch is stale (regenerate it, vendor/README.md)"
fi
if [[ -s $TMP/patch.log ]]; then
    cat "$TMP/patch.log" >&2
    die "patch -R reported the above: vendor/$CRATE.patch does not match vendor/$CRATE exactly"
fi
leftovers=$(find "$TMP/reversed" \( -name '*.orig' -o -name '*.rej' \) -print)
[[ -z $leftovers ]] || die "patch -R left: $leftovers"

# 4. Byte-identical to the release, except what the patch excludes.
diff_args=()
for x in "${EXCLUDES[@]}"; do diff_args+=(-x "$x"); done
if ! diff -ruN "${diff_args[@]}" "$RELEASE" "$TMP/reversed" >"$TMP/diff.txt"; then
    sed -e "s|$TMP/reversed|vendor/$CRATE (patch reversed)|g" -e "s|$RELEASE|$CRATE-$VERSION (crates.io)|g" "$TMP/diff.txt" >&2
    die "vendor/$CRATE differs from $CRATE $VERSION by more than vendor/$CRATE.patch (the diff above): \
commit the change into the patch (vendor/README.md says how) or undo it"
fi
files=$(find "$RELEASE" -type f | wc -l)
log "OK: vendor/$CRATE = $CRATE $VERSION + vendor/$CRATE.patch ($(grep -c '^diff ' "$PATCH") files patched, $files files in the release)"
}
