#!/usr/bin/env bash
# Checks and maintains the patch series in vendor/patches/.
#
#   vendor/patches.sh check        pristine + series == vendor/mimalloc (exit 1 if not)
#   vendor/patches.sh pristine     print the path of the pristine tree (for
#                                  scripts that build it, e.g. benches/patches_icount.sh)
#   vendor/patches.sh new NAME     write the next numbered patch: the difference
#                                  between pristine + series and vendor/mimalloc
#   vendor/patches.sh refresh N    fold the difference between pristine + series
#                                  and vendor/mimalloc into patch N, and rewrite
#                                  the later patches on top of it (fails, and
#                                  writes nothing, where a later patch conflicts)
#   vendor/patches.sh fold K N     fold patch K (a fix-up) into the earlier
#                                  patch N and remove K (same checks)
#
# The pristine source is mimalloc v2.5.2 as shipped in the crates.io package
# libmimalloc-sys2 0.1.65 (c_src/mimalloc), a dev-dependency of this crate,
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
    if p["name"] == "libmimalloc-sys2" and p["version"] == "0.1.65":
        print(os.path.join(os.path.dirname(p["manifest_path"]), "c_src/mimalloc"))
')"
  [ -d "$src" ] || { echo "patches.sh: libmimalloc-sys2 0.1.65 source not found" >&2; exit 2; }
  echo "$src"
}

# Copies the pristine tree to $1 and applies the whole series to it.
build_patched() {
  local dest="$1"
  cp -r "$(pristine_dir)" "$dest"
  local p
  for p in vendor/patches/*.patch; do
    [ -e "$p" ] || continue
    patch --quiet --batch --forward --no-backup-if-mismatch -p1 -d "$dest" < "$p" \
      || { echo "patches.sh: $p does not apply" >&2; exit 1; }
  done
}

# `diff -ruN` of two trees, as a patch with a/ and b/ prefixes and no dates.
tree_diff() {
  (cd "$1" && diff -ruN "$2" "$3" || true) | sed -E 's#^((---|\+\+\+) [^\t]*)\t.*#\1#'
}

# Applies $2 to the tree $1, offsets and fuzz allowed (the result is checked
# against vendor/mimalloc), no rejects.
apply_to() {
  patch --quiet --batch --forward --fuzz=3 -p1 -d "$1" --no-backup-if-mismatch -r - < "$2" \
    || { echo "patches.sh: $2 does not apply on the refreshed series" >&2; exit 1; }
}

patch_file() {
  local n; n=$(printf '%04d' "$((10#$1))")
  ls vendor/patches/"$n"-*.patch 2>/dev/null || { echo "patches.sh: no patch $n" >&2; exit 2; }
}

# Rewrites the series from pristine: `$2` (a patch file) is applied right
# after patch `$1` and becomes part of it; patch `$3` (if any) is left out;
# every other patch is re-applied in order and rewritten. The result must
# equal vendor/mimalloc, or nothing is written.
rewrite() {
  local target="$1" extra="$2" skip="${3:-}"
  local work="$tmp/rewrite"; mkdir -p "$work/new"
  cp -r "$(pristine_dir)" "$work/a"
  local p
  for p in vendor/patches/*.patch; do
    [ "$p" = "$skip" ] && continue
    cp -r "$work/a" "$work/b"
    apply_to "$work/b" "$p"
    [ "$p" = "$target" ] && apply_to "$work/b" "$extra"
    tree_diff "$work" a b > "$work/new/$(basename "$p")"
    rm -rf "$work/a"; mv "$work/b" "$work/a"
  done
  diff -r "$work/a" vendor/mimalloc >/dev/null \
    || { echo "patches.sh: the rewritten series does not reproduce vendor/mimalloc" >&2; exit 1; }
  [ -n "$skip" ] && rm "$skip"
  cp "$work"/new/*.patch vendor/patches/
}

# `refresh N`: the edit (vendor/mimalloc against pristine + series) is folded
# into patch N.
refresh() {
  local target; target=$(patch_file "$1")
  cp -r "$tmp/mimalloc" "$tmp/full"; cp -r "$here/mimalloc" "$tmp/edited"
  tree_diff "$tmp" full edited > "$tmp/edit.patch"
  [ -s "$tmp/edit.patch" ] || { echo "patches.sh: no changes to fold in" >&2; exit 1; }
  rewrite "$target" "$tmp/edit.patch"
  echo "refreshed $target and the patches after it"
}

# `fold K N`: patch K (a fix-up) is folded into the earlier patch N and removed.
fold() {
  local from into; from=$(patch_file "$1"); into=$(patch_file "$2")
  [ "$((10#$2))" -lt "$((10#$1))" ] || { echo "patches.sh: fold K N needs N < K" >&2; exit 2; }
  rewrite "$into" "$from" "$from"
  echo "folded $from into $into"
}

if [ "${1:-}" = pristine ]; then pristine_dir; exit 0; fi

tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
build_patched "$tmp/mimalloc"

case "${1:-check}" in
  check)
    if diff -r "$tmp/mimalloc" vendor/mimalloc >/dev/null; then
      n=$(find vendor/patches -name "*.patch" | wc -l)
      echo "vendor: pristine mimalloc v2.5.2 + $n patches == vendor/mimalloc"
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
    (cd "$tmp" && mv mimalloc a && cp -r "$here/mimalloc" b)
    tree_diff "$tmp" a b > "$out"
    [ -s "$out" ] || { rm "$out"; echo "patches.sh: no changes" >&2; exit 1; }
    echo "wrote $out" ;;
  refresh) refresh "${2:?usage: patches.sh refresh N}" ;;
  fold) fold "${2:?usage: patches.sh fold K N}" "${3:?usage: patches.sh fold K N}" ;;
  *) echo "usage: patches.sh check | pristine | new NAME | refresh N | fold K N" >&2; exit 2 ;;
esac
