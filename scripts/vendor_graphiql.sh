#!/usr/bin/env bash
# Vendor GraphiQL, its explorer plugin and React into backend/static/graphiql/, so /graphql
# serves its playground from Roster's own static files (no CDN, works offline).
#
# Each package is an exact version whose tarball must match the integrity recorded here, so a
# rerun gives the same bytes. The folder gets the UMD bundles, each package's licence, SOURCES
# (package, version, integrity, licence) and SHA256SUMS, which tests/test_graphiql.py checks.
#
# Usage: scripts/vendor_graphiql.sh   (needs npm and a reachable npm registry; then commit)
# To upgrade: change a version and its integrity (`npm view graphiql@3.9.0 dist.integrity`),
# rerun, and commit. GraphiQL 4 and later ship no UMD bundle: stay on 3.x.
set -euo pipefail

# package  version  integrity (the registry's dist.integrity)  licence
PACKAGES=(
  "react 18.3.1 sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ== MIT"
  "react-dom 18.3.1 sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw== MIT"
  "graphiql 3.9.0 sha512-rJYFlHdBbug9+YbFSwRVvgfPjCayC7wHecZkx/qB4XLuQPFQZw/yB9pmHFtOJV6RiNBBHro3u1GdocKa3YcGRA== MIT"
  "@graphiql/plugin-explorer 3.2.6 sha512-MXzG/zVNzZfes4Em253bHyAbD/lwwAZkPKvxCAQkjz0i3dtcv4uF3D8iqJ7214iu3SCphbORYZZUC93fik1yew== MIT"
  # bundled inside the explorer plugin's UMD file: fetched for its licence only
  "graphiql-explorer 0.9.0 sha512-fZC/wsuatqiQDO2otchxriFO0LaWIo/ovF/CQJ1yOudmY0P7pzDiP+l9CEHUiWbizk3e99x6DQG4XG1VxA+d6A== MIT"
)

# file in the package  ->  name in backend/static/graphiql/
FILES=(
  "react umd/react.production.min.js react.production.min.js"
  "react-dom umd/react-dom.production.min.js react-dom.production.min.js"
  "graphiql graphiql.min.js graphiql.min.js"
  "graphiql graphiql.min.css graphiql.min.css"
  "@graphiql/plugin-explorer dist/index.umd.js plugin-explorer.umd.js"
  "@graphiql/plugin-explorer dist/style.css plugin-explorer.css"
)

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/backend/static/graphiql"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

unpacked() { echo "$WORK/unpacked/${1//\//+}"; }

for entry in "${PACKAGES[@]}"; do
  read -r name version integrity _ <<<"$entry"
  tarball="$(cd "$WORK" && npm pack --silent "$name@$version")"
  actual="sha512-$(openssl dgst -sha512 -binary "$WORK/$tarball" | base64 -w0)"
  if [[ "$actual" != "$integrity" ]]; then
    echo "error: $name@$version is $actual, expected $integrity" >&2
    exit 1
  fi
  mkdir -p "$(unpacked "$name")"
  tar -xzf "$WORK/$tarball" -C "$(unpacked "$name")" --strip-components=1
done

rm -rf "$OUT"
mkdir -p "$OUT"
for entry in "${FILES[@]}"; do
  read -r name source target <<<"$entry"
  cp "$(unpacked "$name")/$source" "$OUT/$target"
done

{
  echo "# What backend/static/graphiql/ holds, written by scripts/vendor_graphiql.sh."
  echo "# package version integrity licence"
  for entry in "${PACKAGES[@]}"; do
    read -r name version integrity licence <<<"$entry"
    echo "$name $version $integrity $licence"
    licence_file="$(unpacked "$name")/LICENSE"
    if [[ ! -f "$licence_file" && "$name" == "@graphiql/plugin-explorer" ]]; then
      # its tarball has no LICENSE file: it is MIT (package.json) from graphql/graphiql, the
      # repository whose licence the graphiql package carries
      licence_file="$(unpacked graphiql)/LICENSE"
    fi
    licence_name="${name#@}"
    cp "$licence_file" "$OUT/LICENSE-${licence_name//\//-}.txt"
  done
} >"$OUT/SOURCES.txt"

(cd "$OUT" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort \
  | xargs sha256sum >SHA256SUMS)
echo "vendored into $OUT:"
cat "$OUT/SOURCES.txt"
