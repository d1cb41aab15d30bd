// `targets:` in pgbak.yaml: one real backup streamed to two MinIO buckets named in the file (the
// secret keys from an environment variable and from a private file); `verify` checks each
// target's copy and names the one that differs; with the first bucket emptied the backup is still
// listed from the second target and `restore --from` it gets the data back.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, runCli } from '../helpers/cli.js';
import { jsonResults, parseEnvelope } from '../helpers/json-schemas.js';
import { awsKeys, flipByte, snapshot } from '../helpers/restore-fixtures.js';
import { awsEnv, createBucket, createDatabase, execFileAsync, SAMPLE_SQL, services, tempDir, uniqueId } from '../helpers/services.js';

async function aws(...args: string[]): Promise<void> {
  await execFileAsync('aws', [...args, '--endpoint-url', services().s3.endpoint, '--only-show-errors'], { env: awsEnv() });
}

interface Setup {
  db: string;
  dir: string;
  first: string;
  second: string;
  env: NodeJS.ProcessEnv;
  name: string;
  artifactKey: string;
  sha256: string;
  expected: Awaited<ReturnType<typeof snapshot>>;
}
let s: Setup;

beforeAll(async () => {
  const db = await createDatabase('ytargets', SAMPLE_SQL);
  const expected = await snapshot(db);
  const dir = tempDir();
  const [first, second] = await Promise.all([createBucket('ymain'), createBucket('yoffsite')]);
  const s3 = services().s3;
  const secretFile = join(dir, 'offsite.secret');
  writeFileSync(secretFile, `${s3.secretKey}\n`, { mode: 0o600 });
  const config = join(dir, 'pgbak.yaml');
  writeFileSync(
    config,
    `jobs:
  - name: shop
    database_url_env: SHOP_URL
    targets:
      - name: main
        endpoint: ${s3.endpoint}
        bucket: ${first}
        access_key: ${s3.accessKey}
        secret_key_env: MAIN_SECRET_KEY
      - name: offsite
        endpoint: ${s3.endpoint}
        bucket: ${second}
        prefix: offsite/
        access_key_env: OFFSITE_ACCESS_KEY
        secret_key_file: ${secretFile}
`,
  );
  const base = backupEnv({ database: db, dir });
  const env = {
    ...base,
    DATABASE_URL: undefined,
    SHOP_URL: base['DATABASE_URL'],
    MAIN_SECRET_KEY: s3.secretKey,
    OFFSITE_ACCESS_KEY: s3.accessKey,
    PGBAK_CONFIG: config,
  };
  const run = await runCli(['backup', '--json'], { env });
  expect(run.code, run.stderr).toBe(0);
  expect(run.stderr).not.toContain(s3.secretKey);
  const [result] = jsonResults<{ name: string }>(run.stdout);
  const name = result!.name;
  const manifest = JSON.parse(readFileSync(join(dir, 'backups', `${name}.manifest.json`), 'utf8')) as {
    artifact: { key: string; sha256: string };
  };
  s = { db, dir, first, second, env, name, artifactKey: manifest.artifact.key, sha256: manifest.artifact.sha256, expected };
}, 400_000);

describe('targets: in pgbak.yaml, two MinIO buckets', () => {
  it('one backup lands complete in both buckets, each under its own prefix; list names both targets', async () => {
    expect(await awsKeys(s.first, 'backups/')).toEqual(
      expect.arrayContaining([`backups/${s.name}.manifest.json`, `backups/${s.artifactKey}`]),
    );
    expect(await awsKeys(s.second, 'offsite/')).toEqual(
      expect.arrayContaining([`offsite/${s.name}.manifest.json`, `offsite/${s.artifactKey}`]),
    );
    const list = await runCli(['list', '--json'], { env: s.env });
    expect(list.code, list.stderr).toBe(0);
    const listed = jsonResults<{ name: string; targets?: string[] }>(list.stdout).find((b) => b.name === s.name);
    expect(listed?.targets).toEqual(['main', 'offsite']);
  }, 300_000);

  it('verify checks each target; a corrupted copy in the second bucket fails with exit 9 naming that target', async () => {
    const ok = await runCli(['verify', s.name], { env: s.env });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/ok {3}target offsite artifact: s3:\/\/\S+\/offsite\/\S+ \d+ bytes, sha256 matches its manifest/);

    // Replace the second bucket's artifact with one flipped byte (same size).
    const file = join(tempDir(), 'artifact');
    await aws('s3', 'cp', `s3://${s.second}/offsite/${s.artifactKey}`, file);
    flipByte(file, 100);
    await aws('s3', 'cp', file, `s3://${s.second}/offsite/${s.artifactKey}`);
    const bad = await runCli(['verify', s.name], { env: s.env });
    expect(bad.code, bad.stderr).toBe(9);
    expect(bad.stdout).toMatch(/FAIL target offsite artifact: s3:\/\/\S+\/offsite\/\S+: sha256 \w+ differs from the manifest's/);
    expect(bad.stdout).toMatch(/ok {3}remote artifact: /);
    expect(bad.stderr).toMatch(/verification FAILED .*failed="target offsite artifact: /);
    const json = await runCli(['verify', s.name, '--json'], { env: s.env });
    expect(json.code).toBe(9);
    expect(parseEnvelope(json.stdout).error?.message).toMatch(
      /^1 of 1 backup\(s\) failed verification: \S+ \(the copy in target offsite\)$/,
    );

    // Put the good bytes back: the next case restores from it.
    await aws('s3', 'cp', `s3://${s.first}/backups/${s.artifactKey}`, file);
    expect(createHash('sha256').update(readFileSync(file)).digest('hex')).toBe(s.sha256);
    await aws('s3', 'cp', file, `s3://${s.second}/offsite/${s.artifactKey}`);
    const again = await runCli(['verify', s.name], { env: s.env });
    expect(again.code, again.stderr).toBe(0);
  }, 300_000);

  it('the first bucket emptied: the backup is listed from the second target alone and restore --from offsite gets the data back', async () => {
    await aws('s3', 'rm', `s3://${s.first}`, '--recursive');
    // A host with nothing in BACKUP_DIR either: only the off-site bucket holds it.
    const bare = { ...s.env, BACKUP_DIR: join(tempDir(), 'empty') };
    const list = await runCli(['list', '--json'], { env: bare });
    expect(list.code, list.stderr).toBe(0);
    const listed = jsonResults<{ name: string; targets?: string[]; state: string }>(list.stdout).find((b) => b.name === s.name);
    expect(listed).toMatchObject({ state: 'good', targets: ['offsite'] });

    const target = `yrestored_${uniqueId()}`;
    const restored = await runCli(['restore', s.name, '--from', 'offsite', '--target', target, '--create'], { env: bare });
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toMatch(/from remote s3:\/\/\S+\/offsite\//);
    expect(await snapshot(target)).toEqual(s.expected);

    const unknown = await runCli(['restore', s.name, '--from', 'ofsite', '--target', target], { env: bare });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^pgbak: error: --from ofsite: no such place\nhint: give one of local, remote, main, offsite$/m);
  }, 300_000);
});
