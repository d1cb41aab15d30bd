import { cpSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, runCli } from '../helpers/cli.js';
import { awsPut } from '../helpers/restore-fixtures.js';
import { createBucket, createDatabase, SAMPLE_SQL, sql, tempDir, uniqueId } from '../helpers/services.js';
import { jsonResult, jsonResults } from '../helpers/json-schemas.js';

interface Check {
  check: string;
  ok: boolean;
  detail?: string;
}

/**
 * Fault run case 9b / M2: each copy is checked against ITS OWN manifest. A broken local manifest
 * fails verify (never `verify ok`); a wrong sha256 in the local manifest blames the local copy,
 * not the intact bucket copy.
 */
describe('verify with a damaged local manifest (M2)', () => {
  let db: string;
  let bucket: string;
  let name: string;
  let source: string;

  beforeAll(async () => {
    db = await createDatabase('c9', SAMPLE_SQL);
    bucket = await createBucket('c9');
    const dir = tempDir();
    const b = await runCli(['backup', '--json', '--no-prune'], { env: backupEnv({ database: db, dir, bucket }) });
    expect(b.code, b.stderr).toBe(0);
    name = jsonResult(b.stdout).name;
    source = join(dir, 'backups');
  });

  /** A copy of the backup in a fresh BACKUP_DIR and a fresh bucket prefix, the local manifest changed by `damage`. */
  async function damaged(damage: (manifestPath: string) => void) {
    const dir = tempDir();
    cpSync(source, join(dir, 'backups'), { recursive: true });
    const prefix = `m2-${uniqueId()}/`;
    for (const f of readdirSync(source).filter((x) => x.startsWith(name))) await awsPut(join(source, f), bucket, prefix + f);
    const manifest = join(dir, 'backups', `${name}.manifest.json`);
    damage(manifest);
    return { dir, manifest, env: { ...backupEnv({ database: db, dir, bucket }), STORAGE_PREFIX: prefix } };
  }

  it('a truncated local manifest (the bucket one intact) fails with exit 9 naming the local manifest', async () => {
    const { env, manifest } = await damaged((m) => truncateSync(m, Math.floor(statSync(m).size / 2)));
    const r = await runCli(['verify', name, '--json'], { env });
    expect(r.code, r.stdout + r.stderr).toBe(9);
    const [v] = jsonResults(r.stdout);
    expect(v).toMatchObject({ ok: false, exitCode: 9 });
    const failed = v.checks.filter((c: Check) => !c.ok);
    expect(failed).toEqual([{ check: 'local manifest', ok: false, detail: expect.stringMatching(/is not valid JSON/) }]);
    expect(failed[0].detail).toContain(manifest);
    expect(v.checks.filter((c: Check) => c.check.startsWith('remote')).every((c: Check) => c.ok)).toBe(true);

    const text = await runCli(['verify', name], { env });
    expect(text.code).toBe(9);
    expect(text.stdout).toMatch(/^verify FAILED: /m);
    expect(text.stdout).not.toMatch(/^verify ok/m);
  });

  it('a wrong sha256 in the local manifest only: the local copy fails, the bucket copy passes and is restored', async () => {
    const { env } = await damaged((m) => {
      const data = JSON.parse(readFileSync(m, 'utf8'));
      data.artifact.sha256 = data.artifact.sha256.replace(/^./, (c: string) => (c === '0' ? '1' : '0'));
      writeFileSync(m, JSON.stringify(data, null, 2));
    });
    const r = await runCli(['verify', name, '--json'], { env });
    expect(r.code, r.stdout + r.stderr).toBe(9);
    const [v] = jsonResults(r.stdout);
    const byName = Object.fromEntries(v.checks.map((c: Check) => [c.check, c]));
    expect(byName['local artifact']).toMatchObject({ ok: false, detail: expect.stringMatching(/sha256 .* differs from the manifest/) });
    expect(byName['local artifact'].detail).not.toContain('s3://');
    expect(byName['remote artifact']).toMatchObject({ ok: true });
    expect(byName['manifests']).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/manifest\.json and s3:\/\/.*manifest\.json: disagree/),
    });

    // Each location's record holds its own copy's checks: the local copy is marked, the bucket copy is not.
    const list = jsonResults((await runCli(['list', '--json'], { env })).stdout);
    expect(list[0]).toMatchObject({
      name,
      state: 'good',
      locations: ['local', 'remote'],
      copies: { local: { state: 'corrupt' }, remote: { state: 'good' } },
    });

    const target = `m2_${uniqueId()}`;
    const restored = await runCli(['restore', '--latest', '--target', target, '--create', '--json'], { env });
    expect(restored.code, restored.stderr).toBe(0);
    expect(jsonResult(restored.stdout)).toMatchObject({ name, locations: ['remote'] });
    expect(await sql(target, 'SELECT count(*) FROM orders')).toBe('5000');
  });
});
