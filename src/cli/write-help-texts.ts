/**
 * Run by `npm run build` after tsc (`node dist/cli/write-help-texts.js`): writes the help texts
 * bin/pgbak serves (src/cli/help-texts.ts) to dist/cli/help.json.
 */
import { writeFileSync } from 'node:fs';
import { HELP_TEXTS_FILE, helpTexts } from './help-texts.js';

writeFileSync(new URL(HELP_TEXTS_FILE, import.meta.url), `${JSON.stringify(await helpTexts())}\n`);
