// GPT-2's reference encoder, as the npm package gpt-3-encoder@1.1.4 ships it
// (installed into data/cache by tools/fetch_npm.sh), for the comparison tests.
//   node tests/gpt2_reference.js encode FILE   -> JSON array of token ids
//   node tests/gpt2_reference.js split FILE    -> JSON array of pre-tokeniser pieces
// `split` uses the package's own regex, read from its source.
const fs = require('fs');
const path = require('path');
const pkg = path.join(__dirname, '..', 'data', 'cache', 'node_modules', 'gpt-3-encoder');
const [mode, file] = process.argv.slice(2);
const text = fs.readFileSync(file, 'utf8');
if (mode === 'encode') {
  process.stdout.write(JSON.stringify(require(pkg).encode(text)));
} else if (mode === 'split') {
  const src = fs.readFileSync(path.join(pkg, 'Encoder.js'), 'utf8');
  const pat = eval(src.match(/const pat = (\/.*\/gu)/)[1]);
  process.stdout.write(JSON.stringify(Array.from(text.matchAll(pat)).map(m => m[0])));
} else {
  console.error('usage: node tests/gpt2_reference.js encode|split FILE');
  process.exit(2);
}
