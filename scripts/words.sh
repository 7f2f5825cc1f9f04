#!/usr/bin/env bash
# One word per concept: fails on a synonym the glossary (src/lib.rs, "Concepts")
# rules out, in gcmalloc's own files (mimalloc's are its own business).
#   delayed page      (not "waiting page" or "pending page": "pending" is for retired items)
#   delayed page reuse (not "page reuse delay" or "page delay")
#   retire            (not "delayed free": mimalloc's delayed-free list is another thing)
#   goal tag          (the 32-bit tag a delayed page keeps; not "qsbr_goal")
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files src csrc tests benches examples fuzz/fuzz_targets bench-suite/suite .ci scripts \
  '*.md' | grep -E '\.(rs|c|h|md|sh)$' | grep -v '^scripts/words\.sh$')
bad=$(grep -nHiE '\b(waiting|pending) ((large/huge|small/medium|small|large|huge|abandoned) )?pages?\b|\bpage (reuse )?delay\b|\bdelayed frees?\b|\bqsbr_goal\b' $files \
  || true)
if [ -n "$bad" ]; then
  echo "$bad"
  echo "words: the lines above use a synonym the glossary rules out (see scripts/words.sh)" >&2
  exit 1
fi
echo "words: one word per concept in $(echo "$files" | wc -l) files"
