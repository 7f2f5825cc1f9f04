#!/usr/bin/env bash
# Checks and maintains the patch series in vendor/patches/.
#
#   vendor/patches.sh check        pristine + series == vendor/mimalloc (exit 1 if not)
#   vendor/patches.sh new NAME     write the next numbered patch: the difference
#                                  between pristine + series and vendor/mimalloc
#
# The pristine source is mimalloc v2.3.2 as shipped in the crates.io package
# libmimalloc-sys 0.1.49 (c_src/mimalloc/v2), a dev-dependency of this crate,
# so `cargo fetch` puts it in the cargo registry.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."

pristine_dir() {
  cargo fetch --quiet >/dev/null 2>&1 || true
  local src
  src="$(cargo metadata --format-version 1 2>/dev/null | python3 -c '
import json, sys, os
m = json.load(sys.stdin)
for p in m["packages"]:
    if p["name"] == "libmimalloc-sys" and p["version"] == "0.1.49":
        print(os.path.join(os.path.dirname(p["manifest_path"]), "c_src/mimalloc/v2"))
')"
  [ -d "$src" ] || { echo "patches.sh: libmimalloc-sys 0.1.49 source not found" >&2; exit 2; }
  echo "$src"
}

# Copies the pristine tree to $1 and applies the whole series to it.
build_patched() {
  local dest="$1"
  cp -r "$(pristine_dir)" "$dest"
  local p
  for p in vendor/patches/*.patch; do
    [ -e "$p" ] || continue
    patch --quiet --batch --forward -p1 -d "$dest" < "$p" \
      || { echo "patches.sh: $p does not apply" >&2; exit 1; }
  done
}

tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
build_patched "$tmp/mimalloc"

case "${1:-check}" in
  check)
    if diff -r "$tmp/mimalloc" vendor/mimalloc >/dev/null; then
      n=$(find vendor/patches -name "*.patch" | wc -l)
      echo "vendor: pristine mimalloc v2.3.2 + $n patches == vendor/mimalloc"
    else
      echo "vendor: vendor/mimalloc differs from pristine + patches:" >&2
      diff -ru "$tmp/mimalloc" vendor/mimalloc | head -40 >&2 || true
      exit 1
    fi ;;
  new)
    name="${2:?usage: patches.sh new NAME}"
    last=$(find vendor/patches -name "*.patch" | sed 's#.*/\([0-9]*\)-.*#\1#' | sort -n | tail -1)
    num=$(printf '%04d' $((10#${last:-0} + 1)))
    out="vendor/patches/$num-$name.patch"
    (cd "$tmp" && mv mimalloc a && cp -r "$here/mimalloc" b && { diff -ruN a b || true; }) \
      | sed -E 's#^((---|\+\+\+) [^\t]*)\t.*#\1#' > "$out"
    [ -s "$out" ] || { rm "$out"; echo "patches.sh: no changes" >&2; exit 1; }
    echo "wrote $out" ;;
  *) echo "usage: patches.sh check | new NAME" >&2; exit 2 ;;
esac
