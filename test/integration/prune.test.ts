import { existsSync } from 'node:fs';
import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { awsKeys } from '../helpers/restore-fixtures.js';
import { listBackups } from '../../src/catalog/catalog.js';
import type { RetentionSettings } from '../../src/config/job.js';
import { StorageError } from '../../src/errors/index.js';
import { MemoryLogger } from '../../src/logging/logger.js';
import { prune, type PruneOptions } from '../../src/retention/prune.js';
import { LocalBackend } from '../../src/storage/local-backend.js';
import { S3Backend } from '../../src/storage/s3-backend.js';
import type { StorageBackend } from '../../src/storage/storage-backend.js';
import { keysOf, mapLimit, writeFakeBackup } from '../helpers/fake-backups.js';
import { backupEnv, runCli } from '../helpers/cli.js';
import { cloneLocal, cloneRemote } from '../helpers/clone-backup.js';
import { jsonResult } from '../helpers/json-schemas.js';
import { createBucket, createDatabase, SAMPLE_SQL, s3Settings, tempDir } from '../helpers/services.js';

const H = 3_600_000;
const D = 24 * H;
const NOW = new Date('2026-11-28T12:00:00Z');
const ago = (ms: number) => new Date(NOW.getTime() - ms);

const opened: S3Backend[] = [];
afterAll(() => opened.forEach((b) => b.destroy()));

function s3(bucket: string, prefix = 'backups/'): S3Backend {
  const backend = new S3Backend(s3Settings(bucket, { prefix }));
  opened.push(backend);
  return backend;
}

/** Every key in the bucket, read with the aws CLI (a client independent of ours). */
const bucketKeys = (bucket: string): Promise<string[]> => awsKeys(bucket);

const retention = (r: Partial<RetentionSettings> = {}): RetentionSettings => ({
  days: 30,
  keepMin: 3,
  keepDaily: 0,
  keepWeekly: 0,
  keepMonthly: 0,
  ...r,
});
const job = (database: string, r: Partial<RetentionSettings> = {}): PruneOptions['job'] => ({
  name: database,
  database,
  filePrefix: database,
  retention: retention(r),
});

/** A real backend whose deletes are recorded, and optionally fail for chosen keys. */
function recording(inner: StorageBackend, failDelete: (key: string) => boolean = () => false) {
  const deletes: string[] = [];
  const backend: StorageBackend = {
    kind: inner.kind,
    location: inner.location,
    urlOf: (k) => inner.urlOf(k),
    put: (k, b, o) => inner.put(k, b, o),
    get: (k, o) => inner.get(k, o),
    stat: (k) => inner.stat(k),
    list: (p) => inner.list(p),
    localPath: (k) => inner.localPath(k),
    checkAccess: () => inner.checkAccess(),
    async delete(key) {
      if (failDelete(key)) throw new StorageError('delete-failed', `injected failure deleting ${key}`);
      deletes.push(key);
      await inner.delete(key);
    },
  };
  return { backend, deletes };
}

describe('catalog', () => {
  it('merges local and bucket copies and tells good, incomplete and corrupt apart', async () => {
    const local = new LocalBackend(tempDir());
    const remote = s3(await createBucket('cat'));
    const both = [local, remote];
    const good = await writeFakeBackup(both, { prefix: 'shop', time: ago(1 * D), globals: true });
    const localOnly = await writeFakeBackup(local, { prefix: 'shop', time: ago(2 * D), encrypted: true });
    const leftover = await writeFakeBackup(both, { prefix: 'shop', time: ago(3 * D), manifest: 'none' });
    const orphanManifest = await writeFakeBackup(remote, { prefix: 'shop', time: ago(4 * D), manifest: 'only' });
    const sizeLie = await writeFakeBackup(both, { prefix: 'shop', time: ago(5 * D) });
    const garbage = await writeFakeBackup(local, { prefix: 'shop', time: ago(6 * D), manifest: 'unparseable' });
    const failedVerify = await writeFakeBackup(local, { prefix: 'shop', time: ago(7 * D), verification: { ok: false } });
    const passedVerify = await writeFakeBackup(local, { prefix: 'shop', time: ago(8 * D), verification: { ok: true } });
    await writeFakeBackup(both, { prefix: 'shop_2', time: ago(1 * D) });
    await writeFile(join(local.location, 'notes.txt'), 'not a backup');
    await writeFile(join(local.location, 'shop_latest.dump'), 'not a pgbak name');

    // The bucket's artifact no longer has the size its manifest says.
    await remote.put(sizeLie.artifact, Readable.from([Buffer.from('xyz')]));

    const entries = await listBackups({ local, remote, prefix: 'shop' });
    const byName = new Map(entries.map((e) => [e.name, e]));
    expect(entries.map((e) => e.name)).toEqual(
      [good, localOnly, leftover, orphanManifest, sizeLie, garbage, failedVerify, passedVerify].map((b) => b.name),
    );

    const g = byName.get(good.name)!;
    expect(g).toMatchObject({ state: 'good', database: 'shop', encrypted: false, problems: [] });
    expect(g.time.toISOString()).toBe(g.manifest!.startedAt);
    expect(g.size).toBe(g.manifest!.artifact.size);
    for (const where of ['local', 'remote'] as const) {
      expect(g.locations[where]).toMatchObject({
        artifact: { key: good.artifact },
        manifest: { key: good.manifest },
        globals: { key: `${good.name}.globals.sql` },
        others: [],
      });
    }
    expect(byName.get(localOnly.name)).toMatchObject({ state: 'good', encrypted: true });
    expect(Object.keys(byName.get(localOnly.name)!.locations)).toEqual(['local']);
    // Its run record says whose it is.
    expect(byName.get(leftover.name)).toMatchObject({
      state: 'incomplete',
      database: 'shop',
      problems: ['local: no manifest', 'remote: no manifest'],
    });
    expect(byName.get(orphanManifest.name)).toMatchObject({ state: 'incomplete', database: 'shop' });
    expect(byName.get(orphanManifest.name)!.problems[0]).toMatch(/remote: manifest without artifact/);
    // Each copy is judged on its own: the bad bucket copy does not condemn the good local one.
    const lie = byName.get(sizeLie.name)!;
    expect(lie.state).toBe('good');
    expect(lie.locations.local!.state).toBe('good');
    expect(lie.locations.remote!.state).toBe('corrupt');
    expect(lie.problems).toEqual([expect.stringMatching(/^remote: .* is 3 bytes, manifest says \d+/)]);
    expect(byName.get(garbage.name)).toMatchObject({ state: 'corrupt', manifest: undefined });
    expect(byName.get(garbage.name)!.problems[0]).toMatch(/local: manifest .* is not valid JSON/);
    expect(byName.get(failedVerify.name)).toMatchObject({ state: 'corrupt', verification: { ok: false } });
    expect(byName.get(passedVerify.name)).toMatchObject({ state: 'good', verification: { ok: true } });

    const all = await listBackups({ local });
    expect(all.map((e) => e.prefix)).toContain('shop_2');
    expect(all.some((e) => e.name.startsWith('shop_latest'))).toBe(false);
  });
});

describe('prune', () => {
  it('removes old backups locally and in the bucket and leaves every foreign file alone', async () => {
    const bucket = await createBucket('prune');
    const local = new LocalBackend(tempDir());
    const remote = s3(bucket);
    const otherPrefix = s3(bucket, 'elsewhere/');
    const both = [local, remote];
    const fresh = await Promise.all([1, 2, 3, 4].map((d) => writeFakeBackup(both, { prefix: 'shop', time: ago(d * D), globals: true })));
    const old = await Promise.all(
      [31, 45, 90].map((d) => writeFakeBackup(both, { prefix: 'shop', time: ago(d * D), globals: true, verification: { ok: true } })),
    );
    const otherDb = await writeFakeBackup(both, { prefix: 'shop_2', time: ago(400 * D) });
    // Same file prefix, another database in the manifest ("my db" and "my_db" share a prefix).
    const sameNameOtherDb = await writeFakeBackup(both, { prefix: 'shop', database: 'shop ', time: ago(100 * D) });
    const elsewhere = await writeFakeBackup(otherPrefix, { prefix: 'shop', time: ago(100 * D) });
    await writeFile(join(local.location, 'README'), 'keep me');
    await mkdir(join(local.location, 'archive'));
    await writeFile(join(local.location, 'archive', `${old[2]!.name}.dump`), 'a copy someone keeps by hand');
    await remote.put('shop_manual.dump', Readable.from([Buffer.from('foreign')]));
    const localBefore = await keysOf(local);
    const bucketBefore = await bucketKeys(bucket);

    const logger = new MemoryLogger();
    const result = await prune({ job: job('shop', { keepMin: 3 }), local, remote, now: NOW, logger });

    expect(result.errors).toEqual([]);
    expect(result.decisions.keep.map((d) => d.name)).toEqual(fresh.map((b) => b.name));
    expect(result.decisions.remove.map((d) => [d.name, d.reasons])).toEqual(old.map((b) => [b.name, ['removed: older than 30 days']]));
    const gone = old.flatMap((b) => b.keys);
    expect(await keysOf(local)).toEqual(localBefore.filter((k) => !gone.includes(k)));
    expect(await bucketKeys(bucket)).toEqual(bucketBefore.filter((k) => !gone.map((g) => `backups/${g}`).includes(k)));
    expect(result.deleted).toHaveLength(gone.length * 2);
    // The survivors, named: other database, same prefix but other database, other STORAGE_PREFIX, foreign files.
    expect(await keysOf(local)).toEqual(
      expect.arrayContaining(['README', `archive/${old[2]!.name}.dump`, ...otherDb.keys, ...sameNameOtherDb.keys]),
    );
    expect(await bucketKeys(bucket)).toEqual(
      expect.arrayContaining([
        'backups/shop_manual.dump',
        ...[...otherDb.keys, ...sameNameOtherDb.keys].map((k) => `backups/${k}`),
        ...elsewhere.keys.map((k) => `elsewhere/${k}`),
      ]),
    );
    expect(logger.lines.some((l) => l.msg.startsWith(`removing ${old[0]!.name}: removed: older than 30 days`))).toBe(true);
  });

  it('keeps the newest BACKUP_KEEP_MIN when every backup is 40 days old, and with RETENTION_DAYS=0', async () => {
    const local = new LocalBackend(tempDir());
    const remote = s3(await createBucket('keepmin'));
    const stale = await Promise.all(
      [40, 41, 42, 43, 44].map((d) => writeFakeBackup([local, remote], { prefix: 'shop', time: ago(d * D) })),
    );
    const r1 = await prune({ job: job('shop', { keepMin: 3 }), local, remote, now: NOW });
    expect(r1.decisions.keep.map((d) => [d.name, d.reasons])).toEqual(stale.slice(0, 3).map((b) => [b.name, ['kept: newest 3']]));
    expect((await listBackups({ local, remote })).map((e) => [e.name, e.state, Object.keys(e.locations).sort()])).toEqual(
      stale.slice(0, 3).map((b) => [b.name, 'good', ['local', 'remote']]),
    );

    const fresh = await Promise.all([1, 2, 3].map((h) => writeFakeBackup([local, remote], { prefix: 'shop', time: ago(h * H) })));
    const r2 = await prune({ job: job('shop', { days: 0, keepMin: 2 }), local, remote, now: NOW });
    expect(r2.decisions.keep.map((d) => d.name)).toEqual(fresh.slice(0, 2).map((b) => b.name));
    expect((await listBackups({ local, remote })).map((e) => e.name)).toEqual(fresh.slice(0, 2).map((b) => b.name));
  });

  it('deletes nothing on a dry run, but reports the same decisions and the keys it would delete', async () => {
    const local = new LocalBackend(tempDir());
    const bucket = await createBucket('dry');
    const remote = s3(bucket);
    const old = await Promise.all(
      [50, 60].map((d) => writeFakeBackup([local, remote], { prefix: 'shop', time: ago(d * D), globals: true })),
    );
    await writeFakeBackup([local, remote], { prefix: 'shop', time: ago(3 * D), manifest: 'none' });
    // BACKUP_KEEP_MIN is at least 1: the newest good backup stays.
    const newest = await writeFakeBackup([local, remote], { prefix: 'shop', time: ago(40 * D) });
    const localBefore = await keysOf(local);
    const bucketBefore = await bucketKeys(bucket);
    const dry = await prune({ job: job('shop', { keepMin: 1 }), local, remote, now: NOW, dryRun: true });
    expect(dry.deleted).toEqual([]);
    expect(dry.decisions.remove).toHaveLength(3);
    // artifact, globals, manifest of each old backup; the leftover's artifact and run record.
    expect(dry.planned).toHaveLength(2 * (3 * 2 + 2));
    expect(await keysOf(local)).toEqual(localBefore);
    expect(await bucketKeys(bucket)).toEqual(bucketBefore);
    const real = await prune({ job: job('shop', { keepMin: 1 }), local, remote, now: NOW });
    expect(real.decisions).toEqual(dry.decisions);
    expect(real.deleted).toEqual(dry.planned);
    expect(await keysOf(local)).toEqual([...newest.keys].sort());
    expect(await bucketKeys(bucket)).toEqual(newest.keys.map((k) => `backups/${k}`).sort());
    expect(real.deleted.map((d) => d.key)).toEqual(expect.arrayContaining(old.flatMap((b) => b.keys)));
  });

  it('leaves a leftover younger than 24 h (a backup in progress) and removes an older one', async () => {
    const local = new LocalBackend(tempDir());
    const young = await writeFakeBackup(local, { prefix: 'shop', time: ago(23 * H), manifest: 'none' });
    const older = await writeFakeBackup(local, { prefix: 'shop', time: ago(25 * H), manifest: 'none' });
    const result = await prune({ job: job('shop'), local, now: NOW });
    expect(result.decisions.keep.map((d) => [d.name, d.reasons])).toEqual([
      [young.name, ['kept: incomplete, may still be in progress (< 24 h)']],
    ]);
    expect(result.decisions.remove.map((d) => [d.name, d.reasons])).toEqual([
      [older.name, ['removed: leftover of a failed run (no manifest, 1 day old)']],
    ]);
    expect(await keysOf(local)).toEqual([...young.keys].sort());
  });

  it('deletes the manifest first, and never the artifact when the manifest delete fails', async () => {
    const dir = tempDir();
    const rec = recording(new LocalBackend(dir));
    const old = await writeFakeBackup(rec.backend, { prefix: 'shop', time: ago(40 * D), globals: true, verification: { ok: true } });
    await writeFakeBackup(rec.backend, { prefix: 'shop', time: ago(1 * D) });
    await prune({ job: job('shop', { keepMin: 1 }), local: rec.backend, now: NOW });
    expect(rec.deletes).toEqual([`${old.name}.manifest.json`, `${old.name}.verify.json`, `${old.name}.globals.sql`, `${old.name}.dump`]);

    const failing = recording(new LocalBackend(tempDir()), (key) => key.endsWith('.manifest.json'));
    const stuck = await writeFakeBackup(failing.backend, { prefix: 'shop', time: ago(40 * D) });
    const kept = await writeFakeBackup(failing.backend, { prefix: 'shop', time: ago(1 * D) });
    const result = await prune({ job: job('shop', { keepMin: 1 }), local: failing.backend, now: NOW });
    expect(result.errors).toEqual([expect.stringMatching(/cannot delete .*manifest\.json: injected failure/)]);
    expect(result.deleted).toEqual([]);
    expect(failing.deletes).toEqual([]);
    expect(await keysOf(failing.backend)).toEqual([...stuck.keys, ...kept.keys].sort());
    expect((await listBackups({ local: failing.backend })).map((e) => e.state)).toEqual(['good', 'good']);
  });

  it('handles more than 1000 objects in the bucket', async () => {
    const bucket = await createBucket('many');
    const remote = s3(bucket);
    const local = new LocalBackend(tempDir());
    // 360 backups every 6 hours (90 days back), 3 objects each: 1080 objects under the prefix.
    const times = Array.from({ length: 360 }, (_, i) => ago(i * 6 * H + 30 * 60_000));
    await mapLimit(times, 16, (time) => writeFakeBackup(remote, { prefix: 'shop', time, globals: true }));
    expect((await bucketKeys(bucket)).length).toBe(1080);
    const entries = await listBackups({ local, remote, prefix: 'shop' });
    expect(entries).toHaveLength(360);
    expect(entries.every((e) => e.state === 'good')).toBe(true);

    const result = await prune({ job: job('shop'), local, remote, now: NOW });
    const expectedKept = times.filter((t) => NOW.getTime() - t.getTime() <= 30 * D).length;
    expect(expectedKept).toBe(120);
    expect(result.errors).toEqual([]);
    expect(result.decisions.keep).toHaveLength(expectedKept);
    expect(result.decisions.remove).toHaveLength(360 - expectedKept);
    expect(await bucketKeys(bucket)).toHaveLength(expectedKept * 3);
  });
});

describe('pgbak prune --dry-run (CLI)', () => {
  it('lists every file it would delete, per backup and per location, with each reason once; deletes nothing', async () => {
    const db = await createDatabase('prdry', SAMPLE_SQL);
    const dir = tempDir();
    const bucket = await createBucket('prdry');
    const env = backupEnv({ database: db, dir, bucket, extra: { BACKUP_PRUNE: 'false', BACKUP_GLOBALS: 'false' } });
    const made = await runCli(['backup', '--json'], { env });
    expect(made.code, made.stderr).toBe(0);
    const name = jsonResult(made.stdout).name as string;
    const backups = join(dir, 'backups');
    const old = [40, 50].map((d) => cloneLocal(backups, name, -d * D));
    for (const d of [40, 50]) await cloneRemote(bucket, 'backups/', name, -d * D);
    const before = await bucketKeys(bucket);

    const r = await runCli(['prune', '--dry-run'], { env: { ...env, BACKUP_KEEP_MIN: '1' } });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    for (const o of old) {
      const at = lines.findIndex((l) => l.startsWith(`  remove ${o}  good`));
      expect(at, r.stdout).toBeGreaterThan(0);
      // The reason without a repeated "removed: ", once.
      expect(lines[at]).toMatch(/good +older than 30 days$/);
      expect(lines.slice(at + 1, at + 7)).toEqual([
        '           would delete locally:',
        `             ${join(backups, `${o}.manifest.json`)}`,
        `             ${join(backups, `${o}.dump`)}`,
        '           would delete in the bucket:',
        `             s3://${bucket}/backups/${o}.manifest.json`,
        `             s3://${bucket}/backups/${o}.dump`,
      ]);
    }
    expect(lines.find((l) => l.startsWith(`  keep   ${name}`))).toMatch(/good +newest 1; younger than 30 days$/);
    expect(r.stdout).toContain('  would delete 8 file(s) (4 local, 4 remote); kept 1 backup(s)');
    // A dry run: everything is still there.
    expect(await bucketKeys(bucket)).toEqual(before);
    for (const o of old) expect(existsSync(join(backups, `${o}.dump`))).toBe(true);

    const json = jsonResult((await runCli(['prune', '--dry-run', '--json'], { env: { ...env, BACKUP_KEEP_MIN: '1' } })).stdout);
    expect(json.files).toHaveLength(8);
    expect(json.files).toContainEqual({
      backup: old[0],
      location: 'remote',
      key: `${old[0]}.dump`,
      path: `s3://${bucket}/backups/${old[0]}.dump`,
    });
  });
});
