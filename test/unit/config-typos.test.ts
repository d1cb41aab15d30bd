import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { problemsOf } from '../helpers/config-errors.js';
import { applyDotenvForChildren } from '../../src/config/child-dotenv.js';
import { loadJobs } from '../../src/config/config-file.js';
import { loadSettings } from '../../src/config/load.js';
import { parseDuration } from '../../src/config/parsers.js';
import { closestName, hasPgbakPrefix, unknownVariableWarnings } from '../../src/config/typos.js';
import { editDistance } from '../../src/model/edit-distance.js';
import type { ConfigError } from '../../src/errors/index.js';

const URL = 'postgresql://bak@db.example:5432/shop';

describe('did you mean', () => {
  it('edit distance counts insertions, deletions, substitutions and swaps', () => {
    expect(editDistance('RETENTION_DAY', 'RETENTION_DAYS')).toBe(1);
    expect(editDistance('BACKUP_COMPRESION', 'BACKUP_COMPRESSION')).toBe(1);
    expect(editDistance('STORAGE_BUCKT', 'STORAGE_BUCKET')).toBe(1);
    expect(editDistance('BACKUP_RPQ', 'BACKUP_RPO')).toBe(1);
    expect(editDistance('BAKCUP_DIR', 'BACKUP_DIR')).toBe(1);
    expect(editDistance('abc', 'abc')).toBe(0);
    expect(editDistance('', 'abc')).toBe(3);
  });

  it('edit distance: the same as the whole matrix, on random names of every length', () => {
    // The textbook form (one new row a line), against the rows reused without allocation.
    const reference = (a: string, b: string): number => {
      const d = Array.from({ length: a.length + 1 }, (_, i) =>
        Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
      );
      for (let i = 1; i <= a.length; i++)
        for (let j = 1; j <= b.length; j++) {
          d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
          if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
        }
      return d[a.length]![b.length]!;
    };
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const name = (max: number) => Array.from({ length: Math.floor(random() * max) }, () => 'AB_C'[Math.floor(random() * 4)]).join('');
    for (let k = 0; k < 2000; k++) {
      // Up to 100 characters: longer than the rows it starts with (64), so they grow.
      const [a, b] = [name(k % 10 === 0 ? 100 : 14), name(k % 10 === 0 ? 100 : 14)];
      expect(editDistance(a, b), `${a} / ${b}`).toBe(reference(a, b));
    }
  });

  it('suggests the closest known name, case-insensitively, only when it is close', () => {
    const names = ['RETENTION_DAYS', 'BACKUP_COMPRESSION', 'BACKUP_KEEP_DAILY', 'storage_bucket'];
    expect(closestName('RETENTION_DAY', names)).toBe('RETENTION_DAYS');
    expect(closestName('BACKUP_COMPRESION', names)).toBe('BACKUP_COMPRESSION');
    expect(closestName('BACKUP_KEEP_DAY', names)).toBe('BACKUP_KEEP_DAILY');
    expect(closestName('storag_bucket', names)).toBe('storage_bucket');
    expect(closestName('retention_day', names)).toBe('RETENTION_DAYS');
    expect(closestName('BACKUP_HOME', names)).toBeUndefined();
    expect(closestName('PGHOST', names)).toBeUndefined();
  });

  it('knows pgbak’s prefixes and leaves other tools’ variables alone', () => {
    for (const name of ['BACKUP_X', 'STORAGE_X', 'GPG_X', 'RETENTION_X', 'NOTIFY_X', 'METRICS_X', 'VERIFY_X', 'PGBAK_X', 'PG_DUMP_PAHT']) {
      expect(hasPgbakPrefix(name), name).toBe(true);
    }
    for (const name of ['PGHOST', 'PGPASSWORD', 'PG_MAJOR', 'PG_VERSION', 'GPG_TTY', 'NOTIFY_SOCKET', 'HOME', 'SHOP_DATABASE_URL']) {
      expect(hasPgbakPrefix(name), name).toBe(false);
    }
  });

  it('warns about every unknown pgbak-looking name of .env, and only about likely typos of the environment', () => {
    const layer = {
      RETENTION_DAY: '7',
      BACKUP_COMPRESION: 'zstd:3',
      STORAGE_BUCKT: 'other',
      BACKUP_SOMETHING_ELSE: 'x',
      RETENTON_DAYS: '3',
      RETENTION_DAYS: '30',
      PGHOST: 'db',
      PGPASSWORD: 'secret',
      PG_MAJOR: '15',
      GPG_TTY: '/dev/pts/0',
      NOTIFY_SOCKET: '/run/systemd/notify',
      SHOP_DATABASE_URL: URL,
      PATH: '/usr/bin',
    };
    expect(unknownVariableWarnings(layer, '.env')).toEqual([
      'unknown variable BACKUP_COMPRESION in .env (ignored); did you mean BACKUP_COMPRESSION?',
      'unknown variable BACKUP_SOMETHING_ELSE in .env (ignored)',
      'unknown variable RETENTION_DAY in .env (ignored); did you mean RETENTION_DAYS?',
      'unknown variable RETENTON_DAYS in .env (ignored); did you mean RETENTION_DAYS?',
      'unknown variable STORAGE_BUCKT in .env (ignored); did you mean STORAGE_BUCKET?',
    ]);
    expect(unknownVariableWarnings(layer, 'the environment')).toEqual([
      'unknown variable BACKUP_COMPRESION in the environment (ignored); did you mean BACKUP_COMPRESSION?',
      'unknown variable RETENTION_DAY in the environment (ignored); did you mean RETENTION_DAYS?',
      'unknown variable RETENTON_DAYS in the environment (ignored); did you mean RETENTION_DAYS?',
      'unknown variable STORAGE_BUCKT in the environment (ignored); did you mean STORAGE_BUCKET?',
    ]);
  });
});

describe('durations need a unit', () => {
  it('refuses a bare number other than 0, and reads units', () => {
    expect(() => parseDuration('6')).toThrow('add a unit, e.g. 6h');
    expect(() => parseDuration(' 90 ')).toThrow('add a unit, e.g. 90h, 90m or 90s');
    expect(() => parseDuration('1.5')).toThrow('add a unit');
    expect(parseDuration('0')).toBe(0);
    expect(parseDuration('6h')).toBe(6 * 3_600_000);
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('0s')).toBe(0);
  });

  it('every duration variable: a bare number is a configuration error naming it (exit 2)', () => {
    const problems = problemsOf(() =>
      loadSettings({ env: { DATABASE_URL: URL, BACKUP_RPO: '6', STORAGE_TIMEOUT: '60', BACKUP_STOP_TIMEOUT: '600' }, envFile: false }),
    );
    expect(problems).toEqual([
      'STORAGE_TIMEOUT="60": add a unit, e.g. 60h, 60m or 60s (a bare number is ambiguous; units: ms, s, m, h, d, w)',
      'BACKUP_STOP_TIMEOUT="600": add a unit, e.g. 600h, 600m or 600s (a bare number is ambiguous; units: ms, s, m, h, d, w)',
      'BACKUP_RPO="6": add a unit, e.g. 6h, 6m or 6s (a bare number is ambiguous; units: ms, s, m, h, d, w)',
    ]);
    try {
      loadSettings({ env: { DATABASE_URL: URL, BACKUP_RPO: '6' }, envFile: false });
    } catch (err) {
      expect((err as ConfigError).exitCode).toBe(2);
    }
    const ok = loadSettings({ env: { DATABASE_URL: URL, BACKUP_RPO: '6h', STORAGE_TIMEOUT: '60s' }, envFile: false });
    expect(ok.settings.BACKUP_RPO).toBe(6 * 3_600_000);
  });
});

describe('loadJobs reports typos of .env, the environment and the config file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pgbak-typos-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('without a config file: warnings for .env and the environment, the defaults still apply', () => {
    writeFileSync(join(dir, '.env'), `DATABASE_URL=${URL}\nRETENTION_DAY=7\nBACKUP_COMPRESION=zstd:3\nPGHOST=db\n`);
    const loaded = loadJobs({ env: { STORAGE_BUCKT: 'other', PGPASSWORD: 'x', PG_VERSION: '15' }, cwd: dir });
    expect(loaded.warnings).toEqual([
      'unknown variable BACKUP_COMPRESION in .env (ignored); did you mean BACKUP_COMPRESSION?',
      'unknown variable RETENTION_DAY in .env (ignored); did you mean RETENTION_DAYS?',
      'unknown variable STORAGE_BUCKT in the environment (ignored); did you mean STORAGE_BUCKET?',
    ]);
    expect(loaded.jobs[0]!.retention.days).toBe(30);
  });

  it('--env-file FILE: the warning names that file', () => {
    writeFileSync(join(dir, 'pgbak.env'), `DATABASE_URL=${URL}\nBACKUP_COMPRESION=zstd:3\n`);
    expect(loadJobs({ env: {}, cwd: dir, envFile: 'pgbak.env' }).warnings).toEqual([
      'unknown variable BACKUP_COMPRESION in pgbak.env (ignored); did you mean BACKUP_COMPRESSION?',
    ]);
  });

  it('with a config file: the .env warnings come first, then the file’s', () => {
    writeFileSync(join(dir, '.env'), 'RETENTION_DAY=7\n');
    writeFileSync(join(dir, 'pgbak.yaml'), `jobs:\n  - name: shop\n    database_url: postgresql://u:pw@db/shop\n`);
    const { warnings } = loadJobs({ env: {}, cwd: dir });
    expect(warnings[0]).toBe('unknown variable RETENTION_DAY in .env (ignored); did you mean RETENTION_DAYS?');
    expect(warnings[1]).toMatch(/^jobs\[0\]\.database_url: contains a password/);
  });

  it('a typo that causes an error is listed with it (DATABSE_URL → DATABASE_URL is required)', () => {
    writeFileSync(join(dir, '.env'), `DATABSE_URL=${URL}\n`);
    expect(problemsOf(() => loadJobs({ env: {}, cwd: dir }))).toEqual([
      'DATABASE_URL: is required (e.g. postgresql://user:pass@host:5432/db)',
      'unknown variable DATABSE_URL in .env (ignored); did you mean DATABASE_URL?',
    ]);
  });

  it('unknown keys of the config file stay errors, now with "did you mean"', () => {
    writeFileSync(
      join(dir, 'pgbak.yaml'),
      `defualts:\n  x: 1\ndefaults:\n  storag_bucket: b\njobs:\n  - name: shop\n    database_url: postgresql://u@db/shop\n    retention_day: 7\n    shedule: "0 6 * * *"\n    colour: red\n`,
    );
    expect(problemsOf(() => loadJobs({ env: {}, cwd: dir, envFile: false }))).toEqual([
      'defualts: unknown key (expected defaults and jobs); did you mean defaults?',
      'defaults.storag_bucket: unknown key; did you mean storage_bucket?',
      'jobs[0].retention_day: unknown key; did you mean retention_days?',
      'jobs[0].shedule: unknown key; did you mean schedule?',
      'jobs[0].colour: unknown key',
    ]);
  });

  it('a bare number in a duration key of the file is an error with its path', () => {
    writeFileSync(join(dir, 'pgbak.yaml'), `jobs:\n  - name: shop\n    database_url: postgresql://u@db/shop\n    backup_rpo: 6\n`);
    expect(problemsOf(() => loadJobs({ env: {}, cwd: dir, envFile: false }))).toEqual([
      'jobs[0].backup_rpo: add a unit, e.g. 6h, 6m or 6s (a bare number is ambiguous; units: ms, s, m, h, d, w)',
    ]);
  });
});

describe('GNUPGHOME of .env reaches the children', () => {
  it('is exported unless the environment sets it; relative paths resolve against cwd; a reload updates its own value only', () => {
    const env: NodeJS.ProcessEnv = {};
    expect(applyDotenvForChildren({ GNUPGHOME: 'keys/gnupg' }, '/srv/app', env)).toEqual({ GNUPGHOME: '/srv/app/keys/gnupg' });
    expect(env.GNUPGHOME).toBe('/srv/app/keys/gnupg');
    applyDotenvForChildren({ GNUPGHOME: '/other' }, '/srv/app', env);
    expect(env.GNUPGHOME).toBe('/other');
    applyDotenvForChildren({}, '/srv/app', env);
    expect(env.GNUPGHOME).toBeUndefined();

    const withOwn: NodeJS.ProcessEnv = { GNUPGHOME: '/root/custom' };
    expect(applyDotenvForChildren({ GNUPGHOME: '/from-dotenv' }, '/srv/app', withOwn)).toEqual({});
    expect(withOwn.GNUPGHOME).toBe('/root/custom');
    applyDotenvForChildren({}, '/srv/app', withOwn);
    expect(withOwn.GNUPGHOME).toBe('/root/custom');
  });
});
