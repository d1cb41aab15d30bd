import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, runCli, spawnCli, type CliResult } from '../helpers/cli.js';
import { startS3Server, type S3Server } from '../helpers/minio.js';
import { bigTableSql, tempFiles, waitFor } from '../helpers/processes.js';
import { createDatabase, execFileAsync, tempDir } from '../helpers/services.js';
import { jsonResult } from '../helpers/json-schemas.js';

/**
 * "Nothing hangs" (fault run H1): a frozen (SIGSTOP) or black-holed S3 endpoint accepts TCP from
 * the kernel backlog and never answers. Every command must still end: by STORAGE_TIMEOUT, or
 * within a few seconds of SIGTERM. Real processes only: a private MinIO we freeze, a TCP server
 * that accepts and never answers, the built CLI.
 */

/** Rows of random-looking text (~45 MB uncompressed dump): long enough to freeze S3 mid-upload. */
const BIG_SQL = bigTableSql(400_000, { withTime: true });

/** A TCP endpoint that accepts every connection and never answers (a black hole). */
async function startBlackHole(): Promise<{ endpoint: string; connections: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let count = 0;
  const server: Server = createServer((socket) => {
    count++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.resume(); // read and drop: the request is "received", the answer never comes
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => count,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

const backupsOf = (dir: string) => join(dir, 'backups');
const listDir = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);
const lockFiles = (dir: string) => listDir(backupsOf(dir)).filter((f) => f.endsWith('.lock'));

/** The local artifact's sha256 equals its manifest's, and its size too. */
function expectGoodLocalBackup(dir: string, name: string): void {
  const manifest = JSON.parse(readFileSync(join(backupsOf(dir), `${name}.manifest.json`), 'utf8')) as {
    artifact: { key: string; size: number; sha256: string };
  };
  const artifact = readFileSync(join(backupsOf(dir), manifest.artifact.key));
  expect(artifact.length).toBe(manifest.artifact.size);
  expect(createHash('sha256').update(artifact).digest('hex')).toBe(manifest.artifact.sha256);
}

/** Wait until the dump's temp file has grown past `bytes`. */
function dumpPast(dir: string, bytes: number): Promise<string> {
  return waitFor(
    () => {
      const tmp = tempFiles(backupsOf(dir)).find((f) => f.includes('.dump'));
      return tmp && (statSync(join(backupsOf(dir), tmp), { throwIfNoEntry: false })?.size ?? 0) > bytes ? tmp : undefined;
    },
    60_000,
    `a dump past ${bytes} bytes`,
  );
}

/** Time a CLI run from now. */
async function timed(run: Promise<CliResult>): Promise<CliResult & { seconds: number }> {
  const t0 = Date.now();
  const r = await run;
  return { ...r, seconds: (Date.now() - t0) / 1000 };
}

describe('nothing hangs on a frozen or black-holed S3 endpoint', () => {
  let db: string;
  let s3: S3Server;
  let bucketSeq = 0;
  const aws = (...args: string[]) =>
    execFileAsync('aws', [...args, '--endpoint-url', s3.endpoint, '--output', 'json'], {
      env: { ...process.env, AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey, AWS_DEFAULT_REGION: 'us-east-1' },
    });
  const frozen = () => s3.process!.kill('SIGSTOP');
  const thawed = () => s3.process!.kill('SIGCONT');

  /** The environment of a run against our own MinIO (a fresh bucket) or another endpoint. */
  async function env(dir: string, extra: Record<string, string> = {}, endpoint?: string): Promise<NodeJS.ProcessEnv> {
    const bucket = `hangs${++bucketSeq}`;
    if (!endpoint) await aws('s3', 'mb', `s3://${bucket}`);
    return {
      ...backupEnv({ database: db, dir, extra: { BACKUP_COMPRESSION: 'none', STORAGE_PART_SIZE: '5MiB', ...extra } }),
      STORAGE_ENDPOINT: endpoint ?? s3.endpoint,
      STORAGE_ACCESS_KEY: s3.accessKey,
      STORAGE_SECRET_KEY: s3.secretKey,
      STORAGE_BUCKET: bucket,
    };
  }

  async function bucketKeys(bucket: string): Promise<string[]> {
    const out = await aws('s3api', 'list-objects-v2', '--bucket', bucket);
    return ((JSON.parse(out.stdout || '{}') as { Contents?: { Key: string }[] }).Contents ?? []).map((c) => c.Key);
  }

  async function openUploads(bucket: string): Promise<string[]> {
    const out = await aws('s3api', 'list-multipart-uploads', '--bucket', bucket);
    return ((JSON.parse(out.stdout || '{}') as { Uploads?: { Key: string }[] }).Uploads ?? []).map((u) => u.Key);
  }

  beforeAll(async () => {
    [db, s3] = await Promise.all([createDatabase('hang', BIG_SQL), startS3Server()]);
  });
  afterAll(async () => {
    if (s3.process?.exitCode === null) thawed();
    await s3.stop();
  });

  it('MinIO frozen mid-upload: the upload is dropped after STORAGE_TIMEOUT, the local backup completes, exit 3; the multipart upload is aborted', async () => {
    const dir = tempDir();
    // Globals off: their object is stored before the freeze and cannot be removed while it lasts.
    const e = await env(dir, { STORAGE_TIMEOUT: '5s', BACKUP_GLOBALS: 'false' });
    const run = spawnCli(['backup', '--json'], { env: e, timeoutMs: 150_000 });
    await dumpPast(dir, 6 * 1024 * 1024);
    frozen();
    const frozenAt = Date.now();
    let thawTimer: NodeJS.Timeout | undefined;
    try {
      thawTimer = setTimeout(thawed, 120_000); // the freeze "ends" after 2 minutes
      const r = await run.done;
      const seconds = (Date.now() - frozenAt) / 1000;
      expect(r.code, r.stderr.slice(-3000)).toBe(3);
      // 5 s until the parts in flight time out (the upload waits on them, each bound by its own
      // timeout) + at most 5 s for the other one + 5 s for the multipart abort, plus a slow machine.
      expect(seconds).toBeLessThan(60);
      expect(r.stderr).toMatch(
        /^pgbak: error: backup kept locally, but the upload failed: S3 upload of hang_\w+\.dump timed out: http:\/\/127\.0\.0\.1:\d+ did not answer within 5\.0s \(STORAGE_TIMEOUT\)$/m,
      );
      expect(r.stderr).toMatch(/hint: .*STORAGE_TIMEOUT/);
      const result = jsonResult(r.stdout) as { name: string; status: string; locations: string[]; paths: string[] };
      expect(result.status).toBe('partial');
      expectGoodLocalBackup(dir, result.name);
      expect(tempFiles(backupsOf(dir))).toEqual([]);
      expect(lockFiles(dir)).toEqual([]);
    } finally {
      clearTimeout(thawTimer);
      thawed();
    }
    // After the freeze nothing of this backup is in the bucket under a final key.
    const keys = await bucketKeys(e.STORAGE_BUCKET!);
    expect(keys.filter((k) => /\.(dump|manifest\.json|globals\.sql)$/.test(k))).toEqual([]);
    // The abort was sent while MinIO was frozen, and may have died with its timeout. Either way the
    // next prune aborts the upload: its backup's run is over (the local manifest says so).
    const pruned = await runCli(['prune'], { env: e });
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(await openUploads(e.STORAGE_BUCKET!)).toEqual([]);
  }, 200_000);

  describe('with a black-holed endpoint', () => {
    let hole: Awaited<ReturnType<typeof startBlackHole>>;
    beforeAll(async () => {
      hole = await startBlackHole();
    });
    afterAll(async () => {
      await hole.close();
    });

    it('backup: preflight gives up on the bucket after STORAGE_TIMEOUT and backs up locally (exit 3); list and status end too', async () => {
      const dir = tempDir();
      const e = await env(dir, { STORAGE_TIMEOUT: '3s', BACKUP_GLOBALS: 'false' }, hole.endpoint);
      const before = hole.connections();
      const r = await timed(runCli(['backup', '--json'], { env: e, timeoutMs: 120_000 }));
      expect(r.code, r.stderr.slice(-3000)).toBe(3);
      // HeadBucket 3 s, the dump itself a few seconds.
      expect(r.seconds).toBeLessThan(45);
      expect(r.stderr).toMatch(/timed out: http:\/\/127\.0\.0\.1:\d+ did not answer within 3\.0s \(STORAGE_TIMEOUT\)/);
      // The endpoint is waited for once in the run: the last-run record is not sent to it again.
      expect(hole.connections() - before).toBe(1);
      expect(r.stderr).toMatch(
        /last-run record not written to the bucket .*not sent: http:\/\/127\.0\.0\.1:\d+ gave no answer in time \S+ ago in this run \(STORAGE_TIMEOUT 3\.0s\); it is not asked again before the next run/,
      );
      expect(r.stderr).toMatch(/hint: .*STORAGE_TIMEOUT/);
      const result = jsonResult(r.stdout) as { name: string };
      expectGoodLocalBackup(dir, result.name);
      expect(tempFiles(backupsOf(dir))).toEqual([]);
      expect(lockFiles(dir)).toEqual([]);

      // list and status read the bucket too: they must end (another change adds the local fallback).
      for (const command of [['list'], ['status']]) {
        const c = await timed(runCli(command, { env: e, timeoutMs: 120_000 }));
        expect(c.signal, `${command[0]} was killed: ${c.stderr}`).toBeNull();
        expect(c.seconds, command[0]).toBeLessThan(45);
        expect(c.code, command[0]).not.toBeNull();
        if (c.code !== 0) expect(c.stderr, command[0]).toMatch(/STORAGE_TIMEOUT|timed out/);
      }
    }, 200_000);

    it('a whole-server run waits for the silent endpoint once, not once a database: each database kept locally (exit 3), the later ones without asking the endpoint again', async () => {
      const dbs = await Promise.all(
        [1, 2, 3].map(() => createDatabase('hangsrv', 'CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g;')),
      );
      const dir = tempDir();
      const e = await env(dir, { STORAGE_TIMEOUT: '3s', BACKUP_DATABASES: dbs.join(','), BACKUP_CONCURRENCY: '1' }, hole.endpoint);
      const before = hole.connections();
      const r = await timed(runCli(['backup', '--json'], { env: e, timeoutMs: 120_000 }));
      expect(r.code, r.stderr.slice(-3000)).toBe(3);
      // One request ever reached the endpoint: the first database's bucket check.
      expect(hole.connections() - before).toBe(1);
      const doc = JSON.parse(r.stdout) as { results: { database: string; status: string; name: string; error: { message: string } }[] };
      expect(doc.results.map((x) => x.status)).toEqual(['partial', 'partial', 'partial']);
      const later = doc.results.filter((x) => !/did not answer within 3\.0s/.test(x.error.message));
      expect(later).toHaveLength(2);
      for (const x of later) expect(x.error.message).toMatch(/S3 access check not sent: .* it is not asked again before the next run/);
      for (const x of doc.results) expectGoodLocalBackup(dir, x.name);
      expect(r.stderr).toMatch(/3 of 3 databases not fully backed up: .*\nhint: no database was fully backed up;/);
      // A one-shot command is one run too: status of the three databases asks the endpoint once.
      const asked = hole.connections();
      const status = await runCli(['status'], { env: e, timeoutMs: 120_000 });
      expect(status.code, status.stderr.slice(-2000)).toBe(12);
      expect(hole.connections() - asked).toBe(1);
      expect(status.stderr.match(/not sent: .* it is not asked again before the next run/g)?.length).toBeGreaterThanOrEqual(3);
    }, 200_000);

    it('SIGTERM to backup, restore --latest and verify while their S3 request hangs: exit 130 within seconds, no lock, no temp file', async () => {
      const dir = tempDir();
      // A local backup to restore and verify (the bucket is down from the start).
      const setup = await env(dir, { STORAGE_TIMEOUT: '2s', BACKUP_GLOBALS: 'false' }, hole.endpoint);
      const first = await runCli(['backup'], { env: setup, timeoutMs: 120_000 });
      expect(first.code, first.stderr.slice(-3000)).toBe(3);
      // From here the default STORAGE_TIMEOUT (60 s): only the signal can end the request in time.
      const e = { ...setup, STORAGE_TIMEOUT: '60s' };
      const commands = [['backup'], ['restore', '--latest', '--target', `${db}_restored`, '--create'], ['verify']];
      for (const args of commands) {
        const before = hole.connections();
        const run = spawnCli(args, { env: e, timeoutMs: 120_000 });
        await waitFor(() => (hole.connections() > before ? true : undefined), 30_000, `${args[0]} to connect to the black hole`);
        await new Promise((r) => setTimeout(r, 500)); // the request is sent and waiting
        const t0 = Date.now();
        run.child.kill('SIGTERM');
        const r = await run.done;
        const seconds = (Date.now() - t0) / 1000;
        expect(r.code, `${args[0]}: ${r.stderr.slice(-2000)}`).toBe(130);
        expect(seconds, args[0]).toBeLessThan(10);
        expect(r.stderr, args[0]).toMatch(/interrupted/);
        expect(tempFiles(backupsOf(dir)), args[0]).toEqual([]);
        expect(lockFiles(dir), args[0]).toEqual([]);
      }
    }, 300_000);
  });

  it('SIGTERM to a backup while MinIO is frozen mid-upload: exit 130 within seconds, no lock, no temp file', async () => {
    const dir = tempDir();
    const e = await env(dir, { BACKUP_GLOBALS: 'false' }); // default STORAGE_TIMEOUT: 60 s
    const run = spawnCli(['backup'], { env: e, timeoutMs: 150_000 });
    await dumpPast(dir, 6 * 1024 * 1024);
    frozen();
    try {
      await new Promise((r) => setTimeout(r, 2000)); // parts are in flight to a frozen server
      const t0 = Date.now();
      run.child.kill('SIGTERM');
      const r = await run.done;
      const seconds = (Date.now() - t0) / 1000;
      expect(r.code, r.stderr.slice(-3000)).toBe(130);
      expect(seconds).toBeLessThan(12);
      expect(r.stderr).toMatch(/interrupted/);
      expect(tempFiles(backupsOf(dir))).toEqual([]);
      expect(lockFiles(dir)).toEqual([]);
      expect(listDir(backupsOf(dir)).filter((f) => !f.startsWith('.'))).toEqual([]);
    } finally {
      thawed();
    }
  }, 200_000);

  it('daemon, MinIO frozen mid-upload, 2×SIGTERM: gives up on the run that cannot stop, exits non-zero, leaves no lock', async () => {
    const dir = tempDir();
    const e = await env(dir, { BACKUP_RUN_ON_START: 'true', BACKUP_SCHEDULE: '0 0 1 1 *', BACKUP_RETRIES: '0', BACKUP_GLOBALS: 'false' });
    const { child, done } = spawnCli(['daemon'], { env: e, timeoutMs: 180_000 });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    await dumpPast(dir, 6 * 1024 * 1024);
    frozen();
    try {
      await new Promise((r) => setTimeout(r, 2000));
      const t0 = Date.now();
      child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 500));
      child.kill('SIGTERM');
      const r = await done;
      const seconds = (Date.now() - t0) / 1000;
      expect(r.signal, stderr.slice(-3000)).toBeNull();
      expect(r.code, stderr.slice(-3000)).not.toBe(0);
      expect(r.code).toBe(1);
      // The abort grace is 60 s: the multipart abort and cleanup cannot finish on a frozen server.
      expect(seconds).toBeLessThan(100);
      expect(stderr).toMatch(/giving up on 1 run/);
      expect(stderr).toMatch(new RegExp(`abandoning the (run\\(s\\)|backup) of ${db}`));
      expect(lockFiles(dir)).toEqual([]);
      expect(tempFiles(backupsOf(dir))).toEqual([]);
    } finally {
      thawed();
    }
  }, 240_000);
});
