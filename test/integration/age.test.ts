import { closeSync, openSync, readdirSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, runCli } from '../helpers/cli.js';
import { jsonResult, jsonResults } from '../helpers/json-schemas.js';
import { newerAgeDir } from '../helpers/age-binary.js';
import { awsKeys, databaseExists, richSql, snapshot } from '../helpers/restore-fixtures.js';
import { createBucket, createDatabase, execFileAsync, services, sql, tempDir, uniqueId } from '../helpers/services.js';

/**
 * age encryption end to end with Debian's real `age` binary, the test PostgreSQL and the test
 * S3 server: two recipients, either identity restores; the artifacts open with the standard
 * `age -d -i key.txt … | pg_restore` recipe; a wrong identity and bad settings fail cleanly.
 */

interface Key {
  readonly file: string;
  readonly recipient: string;
}

async function newKey(dir: string, name: string): Promise<Key> {
  const file = join(dir, `${name}.txt`);
  await execFileAsync('age-keygen', ['-o', file]);
  const { stdout } = await execFileAsync('age-keygen', ['-y', file]);
  return { file, recipient: stdout.trim() };
}

/** The first bytes of a file. */
function head(path: string, n = 64): string {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    const got = readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got).toString('latin1');
  } finally {
    closeSync(fd);
  }
}

/** pg_restore a plain archive read from stdin of a shell pipeline into `db`. */
async function shell(script: string, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const s = services();
  await execFileAsync('bash', ['-o', 'pipefail', '-c', script], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PGHOST: s.pg.host,
      PGPORT: String(s.pg.port),
      PGUSER: s.pg.user,
      PGPASSWORD: s.pg.password,
      ...env,
    },
    maxBuffer: 64 * 1024 * 1024,
  });
}

const newName = (p = 'agerest') => `${p}_${uniqueId()}`;

describe('age encryption', () => {
  let db: string;
  let bucket: string;
  let keyDir: string;
  let ops: Key;
  let breakGlass: Key;
  let stranger: Key;
  let expected: Awaited<ReturnType<typeof snapshot>>;
  /** zstd in the stream (pg_dump 15) + age, to two inline recipients. */
  let zst: { name: string; dir: string; env: NodeJS.ProcessEnv };
  /** gzip by pg_dump + age, recipients from a file. */
  let gz: { name: string; dir: string; env: NodeJS.ProcessEnv };

  beforeAll(async () => {
    db = await createDatabase('agedb', richSql(`ageowner_${uniqueId()}`));
    bucket = await createBucket();
    keyDir = tempDir('pgbak-age-');
    [ops, breakGlass, stranger] = await Promise.all([newKey(keyDir, 'ops'), newKey(keyDir, 'breakglass'), newKey(keyDir, 'stranger')]);
    const recipientsFile = join(keyDir, 'recipients.txt');
    writeFileSync(recipientsFile, `# operations\n${ops.recipient}\n\n# offline break-glass key\n${breakGlass.recipient}\n`);
    const run = async (extra: Record<string, string>, prefix: string) => {
      const dir = tempDir();
      const env = backupEnv({ database: db, dir, bucket, extra: { STORAGE_PREFIX: prefix, ...extra } });
      const r = await runCli(['backup', '--json', '--no-prune'], { env });
      expect(r.code, r.stderr).toBe(0);
      const result = jsonResult(r.stdout);
      expect(result.encrypted).toBe(true);
      return { name: result.name as string, dir, env };
    };
    [zst, gz] = await Promise.all([
      run({ AGE_RECIPIENTS: `${ops.recipient}, ${breakGlass.recipient}`, BACKUP_COMPRESSION: 'zstd:3' }, 'age-zst/'),
      run({ AGE_RECIPIENTS: recipientsFile }, 'age-gz/'),
    ]);
    expected = await snapshot(db);
  });

  it('stores only age ciphertext (.age) locally and in the bucket, and the manifest names every recipient', async () => {
    const files = readdirSync(join(zst.dir, 'backups')).filter((f) => f.startsWith(zst.name));
    expect(files.sort()).toEqual(
      [`${zst.name}.dump.zst.age`, `${zst.name}.globals.sql.age`, `${zst.name}.manifest.json`, `${zst.name}.run.json`].sort(),
    );
    for (const [dir, f] of [
      [zst.dir, `${zst.name}.dump.zst.age`],
      [zst.dir, `${zst.name}.globals.sql.age`],
      [gz.dir, `${gz.name}.dump.age`],
    ] as const) {
      expect(head(join(dir, 'backups', f))).toMatch(/^age-encryption\.org\/v1\n/);
    }
    for (const b of [zst, gz]) {
      const m = JSON.parse(readFileSync(join(b.dir, 'backups', `${b.name}.manifest.json`), 'utf8'));
      expect(m.encryption).toEqual({ method: 'age', recipients: [ops.recipient, breakGlass.recipient] });
    }
    const keys = await awsKeys(bucket, 'age-gz/');
    expect(keys.filter((k) => k.includes(gz.name)).sort()).toEqual(
      [
        `age-gz/${gz.name}.dump.age`,
        `age-gz/${gz.name}.globals.sql.age`,
        `age-gz/${gz.name}.manifest.json`,
        `age-gz/${gz.name}.run.json`,
      ].sort(),
    );
  });

  it('restores with either identity: the operations key locally, the break-glass key from the bucket (with the globals)', async () => {
    const a = newName();
    const r1 = await runCli(['restore', zst.name, '--target', a, '--create', '--json'], {
      env: { ...zst.env, AGE_IDENTITY_FILE: ops.file },
    });
    expect(r1.code, r1.stderr).toBe(0);
    expect(await snapshot(a)).toEqual(expected);

    const b = newName();
    const r2 = await runCli(['restore', zst.name, '--from', 'remote', '--with-globals', '--target', b, '--create', '--json'], {
      env: { ...zst.env, AGE_IDENTITY_FILE: breakGlass.file },
    });
    expect(r2.code, r2.stderr).toBe(0);
    expect(jsonResult(r2.stdout)).toMatchObject({
      mode: 'stream',
      locations: ['remote'],
      paths: [`s3://${bucket}/age-zst/${zst.name}.dump.zst.age`],
    });
    expect(await snapshot(b)).toEqual(expected);
  });

  it('opens with the standard tools: age -d -i key.txt | [zstd -d |] pg_restore, and psql for the globals', async () => {
    const a = newName('agecli');
    await sql('postgres', `CREATE DATABASE ${a}`);
    const backups = join(zst.dir, 'backups');
    await shell(`age -d -i "$KEY" "$DIR/${zst.name}.dump.zst.age" | zstd -d -q -c | pg_restore --no-owner -d ${a}`, {
      KEY: breakGlass.file,
      DIR: backups,
    });
    expect((await snapshot(a)).tables).toEqual(expected.tables);

    const b = newName('agecli');
    await sql('postgres', `CREATE DATABASE ${b}`);
    await shell(`age -d -i "$KEY" "$DIR/${gz.name}.dump.age" | pg_restore -d ${b}`, { KEY: ops.file, DIR: join(gz.dir, 'backups') });
    expect(await snapshot(b)).toEqual(expected);

    const { stdout } = await execFileAsync('age', ['-d', '-i', ops.file, join(backups, `${zst.name}.globals.sql.age`)]);
    expect(stdout).toMatch(/CREATE ROLE ageowner_/);
  });

  it('a wrong identity fails before the target is touched: exit 8, one line with a hint', async () => {
    const target = newName('agewrong');
    await sql('postgres', `CREATE DATABASE ${target}`);
    await sql(target, 'CREATE TABLE keep (x int); INSERT INTO keep VALUES (42)');
    for (const [from, identity] of [
      ['local', stranger.file],
      ['remote', stranger.file],
    ] as const) {
      const r = await runCli(['restore', zst.name, '--from', from, '--target', target, '--yes'], {
        env: { ...zst.env, AGE_IDENTITY_FILE: identity },
      });
      expect(r.code).toBe(8);
      expect(r.stderr).toContain('error: cannot decrypt');
      expect(r.stderr).toContain('AGE_IDENTITY_FILE holds none of the keys it was encrypted to');
      expect(r.stderr).toMatch(/hint: .*age-keygen -y/);
      expect(await sql(target, 'SELECT x FROM keep')).toBe('42');
    }
    // Not set at all, and a file that is no identity: the same exit code, each its own cause.
    const unset = await runCli(['restore', zst.name, '--target', target, '--yes'], { env: zst.env });
    expect(unset.code).toBe(8);
    expect(unset.stderr).toContain('AGE_IDENTITY_FILE is not set');
    expect(unset.stderr).toContain(ops.recipient.slice(0, 12));
    const junk = join(keyDir, 'junk.txt');
    writeFileSync(junk, 'not a key\n');
    const bad = await runCli(['restore', zst.name, '--target', target, '--yes'], { env: { ...zst.env, AGE_IDENTITY_FILE: junk } });
    expect(bad.code).toBe(8);
    expect(bad.stderr).toContain('not a usable age identity file');
    expect(await sql(target, 'SELECT x FROM keep')).toBe('42');
    expect(await databaseExists(target)).toBe(true);
  });

  it('verify and verify --restore-test decrypt with AGE_IDENTITY_FILE; without it the restore test fails with exit 8', async () => {
    const env = { ...zst.env, AGE_IDENTITY_FILE: breakGlass.file };
    const plain = await runCli(['verify', zst.name, '--json'], { env });
    expect(plain.code, plain.stderr).toBe(0);
    const r = await runCli(['verify', zst.name, '--restore-test', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const [v] = jsonResults(r.stdout);
    expect(v).toMatchObject({ name: zst.name, ok: true, kind: 'restore-test' });
    expect(v.checks.filter((c: { ok: boolean }) => !c.ok)).toEqual([]);
    expect(v.checks.map((c: { check: string }) => c.check)).toContain('row counts');

    const none = await runCli(['verify', zst.name, '--restore-test'], { env: zst.env });
    expect(none.code).toBe(8);
    expect(none.stderr).toContain('AGE_IDENTITY_FILE is not set');
  });

  it('backup --dry-run checks the recipients with the installed age and names the .age files', async () => {
    const dir = tempDir();
    const env = backupEnv({ database: db, dir, extra: { AGE_RECIPIENTS: `${ops.recipient},${breakGlass.recipient}` } });
    const r = await runCli(['backup', '--dry-run'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\[ok\] age recipients: 2 recipient\(s\) from AGE_RECIPIENTS: age1/);
    expect(r.stdout).toMatch(/\.dump\.age\b/);
    expect(r.stdout).toMatch(/\.globals\.sql\.age\b/);
    expect(r.stdout).toContain('age --encrypt to 2 recipient(s)');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('GPG_RECIPIENT and AGE_RECIPIENTS together are a configuration error (exit 2), before anything is written', async () => {
    const dir = tempDir();
    const env = backupEnv({ database: db, dir, encrypt: true, extra: { AGE_RECIPIENTS: ops.recipient } });
    const r = await runCli(['backup'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('GPG_RECIPIENT and AGE_RECIPIENTS are both set');
    expect(r.stderr).toMatch(/hint: unset one of them/);
    expect(() => readdirSync(join(dir, 'backups'))).toThrow();
  });

  it('a malformed, unknown or unusable recipient is a configuration error naming it, with a hint', async () => {
    const dir = tempDir();
    const attempt = async (value: string) => {
      const env = backupEnv({ database: db, dir, extra: { AGE_RECIPIENTS: value } });
      return runCli(['backup', '--no-prune'], { env });
    };
    const typo = await attempt(`${ops.recipient}, age1notakey`);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('"age1notakey" is not an age recipient');

    // Well-formed bech32 but not a key (checksum broken by one character): age itself refuses it.
    const last = ops.recipient.at(-1) === 'q' ? 'p' : 'q';
    const broken = await attempt(ops.recipient.slice(0, -1) + last);
    expect(broken.code).toBe(2);
    expect(broken.stderr).toMatch(/AGE_RECIPIENTS: age .*cannot encrypt to age1/);
    expect(broken.stderr).toMatch(/hint: check the key against `age-keygen -y key.txt`/);

    const missing = await attempt(join(dir, 'no-such-recipients.txt'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read the recipients file');

    // A post-quantum (ML-KEM-768 + X25519) recipient made by typage: Debian 12's age 1.1.1 (the age
    // on PATH here, which .ci/run installs) knows it only as a plugin it does not have.
    const { stdout: version } = await execFileAsync('age', ['--version']);
    expect(version.trim(), "Debian 12's age 1.1 on PATH").toMatch(/^v?1\.[0-2]\./);
    const r = await attempt(PQ_RECIPIENT);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/AGE_RECIPIENTS: age 1\.[0-2]\.\d+ cannot encrypt to age1pq1/);
    expect(r.stderr).toMatch(/hint: post-quantum age1pq1… recipients need age 1\.3 or later/);
    expect(readdirSync(join(dir, 'backups')).filter((f) => !f.startsWith('.'))).toEqual([]);
  });

  it('with age 1.3 on PATH: a backup to two post-quantum recipients restores with either identity; a mix with a classic key is refused', async () => {
    const ageDir = await newerAgeDir();
    const path = `${ageDir}:${process.env.PATH}`;
    const pqKey = async (name: string): Promise<Key> => {
      const file = join(keyDir, `${name}.txt`);
      await execFileAsync(join(ageDir, 'age-keygen'), ['-pq', '-o', file]);
      return { file, recipient: (await execFileAsync(join(ageDir, 'age-keygen'), ['-y', file])).stdout.trim() };
    };
    const [pqOps, pqSafe] = await Promise.all([pqKey('pq-ops'), pqKey('pq-breakglass')]);
    expect(pqOps.recipient).toMatch(/^age1pq1/);
    const dir = tempDir();
    const env = (recipients: string) =>
      backupEnv({ database: db, dir, bucket, extra: { PATH: path, STORAGE_PREFIX: 'age-pq/', AGE_RECIPIENTS: recipients } });

    // age itself refuses to mix kinds (a classic key would undo the post-quantum protection).
    const mixed = await runCli(['backup', '--no-prune'], { env: env(`${ops.recipient},${pqOps.recipient}`) });
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toMatch(/AGE_RECIPIENTS: age 1\.3\.\d+ cannot encrypt to the recipients: .*can't mix post-quantum and classic/);
    expect(mixed.stderr).toMatch(/hint: age encrypts to post-quantum or to classic keys, not both/);
    expect(readdirSync(join(dir, 'backups')).filter((f) => !f.startsWith('.'))).toEqual([]);

    const b = await runCli(['backup', '--json', '--no-prune'], { env: env(`${pqOps.recipient},${pqSafe.recipient}`) });
    expect(b.code, b.stderr).toBe(0);
    const name = jsonResult(b.stdout).name as string;
    const m = JSON.parse(readFileSync(join(dir, 'backups', `${name}.manifest.json`), 'utf8'));
    expect(m.encryption).toEqual({ method: 'age', recipients: [pqOps.recipient, pqSafe.recipient] });
    for (const [from, identity] of [
      ['local', pqOps.file],
      ['remote', pqSafe.file],
    ] as const) {
      const target = newName('agepq');
      const r = await runCli(['restore', name, '--from', from, '--target', target, '--create'], {
        env: { ...env(''), AGE_IDENTITY_FILE: identity },
      });
      expect(r.code, r.stderr).toBe(0);
      expect((await snapshot(target)).tables).toEqual(expected.tables);
    }
  });
});

/** A post-quantum hybrid recipient (a public key; its identity was thrown away), made with typage's generateHybridIdentity. */
const PQ_RECIPIENT = [
  'age1pq16p32fy4eer74ymmhxtzh2d3mrvv530chpnck9gq9ep60r963472ppgltx52q9vr7eqd8d5kp72y5qhuv8e0xvuwrzcw6m',
  'gfse2py265tk2jatzdmzgf7axpvpc927hnvjx7jwm5um96d8ugkkuq3px9tp8zrf0v0wgten6edcg644n5gzr3a5x6rutxxpfdh9',
  'l2gjz9fn90s233y5yvlzmy47tazyp5hncd2qpqkrgt4tsgst3nn6wg9xg2790jns0zyl62y6nnf0xpg3q062xwsdpvkekveu5vt8',
  'fwuzp5gwpc7ystdsg5xlpdg855t4jv2wj5hz7f8pvvq8fngx67xtw5qv9u8gw9sjwpxyzy5t9uy5q8dke4xwke4gzstxrenmeev4',
  '34p9fk7myklhtyzssz8w3c8vq7ah8594fz5f2nqw5smvt4jt5alzsjgj20u80x2xu2un44vdu8rxh0x4qnvl6u9q3chzc3uxp84t',
  '8az889szaj7zy54pjqryxsww2ez2ssyn65tscmpwz3rxg3ae2u3vj2ht6rj8462gz0qyaemsrnwq0pqvvfndq63d038qn5dts4ky',
  'crfycwxmudzmtpuw8xjc0kt03tf4szvuqqjx3ks8m3dkfg5u8p93mq0hkgefxghka6jfpmqlsjdg6rh3j2ur8895tcpje6qe9mu0',
  '3zxumt566z58knkcnqp4299pvyp0k32g05y9mvr54y8l9xnndfk88ckrakfvun6pgd56s3qd6j48wfk7v3n03438t30kdrr36dhn',
  'ycjvjn3dysl576avuhqtv2h0cu9uhayngemcp0y2xk5pew2q5n3h3245jph5ztxzey7x9cnhrnk6ydkqzh63ryqln9haaynwppqn',
  'lhtd9zd8qm5ccxemzuraspmz47ezukjt25vlwt7jjd6xyfj0mk3ex2wkqzjvvkgc2jhdfxg4z2rc9n7yd8ux9ymqg6vy4gevdy8s',
  'x9dqn33s5g2ter05xpjg8dsr69x40sh3jw7cj4jeq7tq5yh058pvdfhanqdmursvpgtl0cnztcw2uksfzmpk5pav22v4zng07jns',
  '46k4dj9qprgg6npj2nvekltjqcxqew4sk2gng9t4302sfgwvs3v52ha3xk0canmgsgpgxe89g3mddw0tkg8ljypuzp9xncfvqre3',
  '2t0lz3094sefu9rwrkrvn6jf2ksgvc4v9jjlexyzl78fq5ukv2crx3p5ymvn4yur5f7np6n2yvnhqj3v82vrvu8zyk5kw3k02tms',
  'zuzp898p73jczqhttls75dlc54dye22u6f2n673wgmxg6rga6qdezcq03egpvhkexp6293h53ckf7q62s58vmcjc7vvhdp0wd3x0',
  'auks04f9hz88r3c9wa94cze4st238qh3yvcn39env27kdz4e8n5gw6vpm4zzgsxk5a6u9j9r05zg60mrgfyw9ssrxmuh9g86trfy',
  '37nkp4wvcr8wam4wy9qjlcrdm4kqpnhczyzuc4wkq3v8v3vmp7cjelrjykjdwfu3vv6masxkgxmgwput9x23dw8l9e6hytzy9c9v',
  'k70qmk5hwnkh9t6v34kef6vd045ktzuwdyxpgfxmxacsk9m04vd57gjy6czp7m68yvttfsvdcnkxwy46n8su0rxz9tr6a79hpy3c',
  'msgx56hwsta77pvtcls3rza4nqrwyqx3vsrr8gmz0k9tdkrfye0gpdcsd3jm3ttyrcewtgz4z6glyl49f3ghaujt6639f3kqmj9g',
  '8pzf23ruld9xa8tx6l3s34age6rna92pwpxf2vmz9vuknn6evdu4n8vaa6j39xscgq2x6kjcptpjlqfecljdfj39944m30xyxj8a',
  'wct35q4g7f0mzhhpzn3fw3h7c4zq35er07at54klx4ht8tfegryv5uktn02',
].join('');
