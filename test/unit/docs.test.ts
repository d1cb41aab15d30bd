import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { variables } from '../../src/config/schema.js';
import { exitCodeHelp } from '../../src/errors/index.js';
import { REPO_ROOT } from '../helpers/cli.js';

const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

describe('README stays in step with the code', () => {
  it('documents every configuration variable with its default', () => {
    for (const v of variables) {
      const row = readme.split('\n').find((l) => l.startsWith(`| \`${v.name}\` |`));
      expect(row, v.name).toBeDefined();
      const def = 'default' in v && v.default ? `\`${v.default}\`` : '-';
      expect(row!.split('|')[2]!.trim(), v.name).toBe(def);
    }
  });

  it('documents every exit code', () => {
    for (const [code] of exitCodeHelp) expect(readme, `exit code ${code}`).toMatch(new RegExp(`^\\| ${code} \\|`, 'm'));
  });
});
