// typage (the `age-encryption` npm package) as a stdin → stdout filter, for the bench's age
// scenarios (bench/scenarios-age.ts): `node typage-filter.mjs encrypt RECIPIENT` or
// `node typage-filter.mjs decrypt IDENTITY_FILE`. The package is not a dependency of pgbak: the
// bench loads it from TYPAGE_DIR (`npm install --prefix DIR age-encryption`).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';

const [mode, arg] = process.argv.slice(2);
const age = await import(pathToFileURL(join(process.env.TYPAGE_DIR ?? '', 'node_modules', 'age-encryption', 'dist', 'index.js')).href);
const input = Readable.toWeb(process.stdin);
let output;
if (mode === 'encrypt') {
  const e = new age.Encrypter();
  e.addRecipient(arg);
  output = await e.encrypt(input);
} else {
  const d = new age.Decrypter();
  d.addIdentity(
    readFileSync(arg, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('AGE-SECRET-KEY-')),
  );
  output = await d.decrypt(input);
}
await pipeline(Readable.fromWeb(output), process.stdout);
