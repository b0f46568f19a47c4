// Writes FILE.br (brotli, quality 11) beside each wasm, js and css file in the given folder, for
// the server to send as they are to browsers that accept brotli (see server/src/assets.rs).
// Node's own zlib: nothing to install beyond the Node that the build already uses.
//
//   node scripts/precompress.js target/site/pkg
const fs = require("fs");
const path = require("path");
const zlib = require("zlib");

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node scripts/precompress.js DIR");
  process.exit(2);
}
for (const name of fs.readdirSync(dir)) {
  if (!/\.(wasm|js|css)$/.test(name)) continue;
  const file = path.join(dir, name);
  const raw = fs.readFileSync(file);
  const br = zlib.brotliCompressSync(raw, {
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: zlib.constants.BROTLI_MAX_QUALITY,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
      [zlib.constants.BROTLI_PARAM_MODE]: name.endsWith(".wasm")
        ? zlib.constants.BROTLI_MODE_GENERIC
        : zlib.constants.BROTLI_MODE_TEXT,
    },
  });
  fs.writeFileSync(file + ".br", br);
  console.log(`${name}: ${raw.length} bytes, brotli ${br.length}`);
}
