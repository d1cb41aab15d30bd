import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { artifactKey, globalsKey, parseKey } from '../../src/catalog/backup-name.js';
import { loadJobs } from '../../src/config/config-file.js';
import { problemsOf } from '../helpers/config-errors.js';

const OPS = 'age1elwcfvj59yr2zyrc3ecj7ax6f5k77qd478vndkvn2turvrps7yss2a0tpr';
const SAFE = 'age1300fm5kg6n4jgsf2697jr3nzu9ehnqvyrfm9w6649gxmzeulsyaseg3hny';
const URL = 'postgresql://bak@db:5432/shop';

describe('AGE_RECIPIENTS and AGE_IDENTITY_FILE', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pgbak-age-unit-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const job = (env: Record<string, string>) => loadJobs({ env: { DATABASE_URL: URL, ...env }, cwd: dir, envFile: false }).jobs[0]!;

  it('reads keys separated by commas or spaces, or one recipients file (made absolute), and the identity file', () => {
    expect(job({ AGE_RECIPIENTS: `${OPS}, ${SAFE}` }).age).toEqual({ recipients: { keys: [OPS, SAFE] }, identityFile: undefined });
    expect(job({ AGE_RECIPIENTS: `${OPS} ${SAFE}` }).age.recipients).toEqual({ keys: [OPS, SAFE] });
    expect(job({ AGE_RECIPIENTS: 'keys/recipients.txt', AGE_IDENTITY_FILE: 'key.txt' }).age).toEqual({
      recipients: { file: join(dir, 'keys/recipients.txt') },
      identityFile: join(dir, 'key.txt'),
    });
    expect(job({}).age).toEqual({ recipients: undefined, identityFile: undefined });
  });

  it('refuses a key that is not age1… and GPG_RECIPIENT beside AGE_RECIPIENTS', () => {
    expect(problemsOf(() => job({ AGE_RECIPIENTS: `${OPS},age1NOTLOWER` }))[0]).toMatch(
      /^AGE_RECIPIENTS=.*: "age1NOTLOWER" is not an age recipient/,
    );
    expect(problemsOf(() => job({ AGE_RECIPIENTS: `${OPS},ssh-rsa` }))[0]).toMatch(/"ssh-rsa" is not an age recipient/);
    expect(problemsOf(() => job({ AGE_RECIPIENTS: OPS, GPG_RECIPIENT: 'ops@example.com' }))).toEqual([
      'GPG_RECIPIENT and AGE_RECIPIENTS are both set: a backup is encrypted with gpg or with age, not both',
    ]);
    // The identity file alone (to restore older age backups) is fine beside GPG_RECIPIENT.
    expect(job({ AGE_IDENTITY_FILE: '/k.txt', GPG_RECIPIENT: 'ops@example.com' }).age.identityFile).toBe('/k.txt');
  });

  it('names age artifacts .age and parses them back', () => {
    const base = 'shop_20261205_120000';
    expect(artifactKey(base, { streamCompression: 'zstd', encrypted: 'age' })).toBe(`${base}.dump.zst.age`);
    expect(artifactKey(base, { encrypted: 'age' })).toBe(`${base}.dump.age`);
    expect(artifactKey(base, { encrypted: true })).toBe(`${base}.dump.gpg`);
    expect(artifactKey(base, { encrypted: 'gpg' })).toBe(`${base}.dump.gpg`);
    expect(globalsKey(base, 'age')).toBe(`${base}.globals.sql.age`);
    expect(parseKey(`backups/${base}.dump.zst.age`)).toMatchObject({
      base,
      role: 'artifact',
      encrypted: true,
      encryption: 'age',
      streamCompression: 'zstd',
    });
    expect(parseKey(`${base}.globals.sql.age`)).toMatchObject({ role: 'globals', encryption: 'age' });
    expect(parseKey(`${base}.dump.gpg`)).toMatchObject({ encryption: 'gpg' });
    expect(parseKey(`${base}.dump`)).toMatchObject({ encrypted: false, encryption: undefined });
  });
});
