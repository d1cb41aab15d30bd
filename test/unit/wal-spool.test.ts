import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  claimWorker,
  consumePushed,
  fileIdentity,
  readyAfter,
  recordFailed,
  recordPushed,
  releaseWorker,
  removeStaleRecords,
  waitPushed,
  workerRunning,
} from '../../src/wal/wal-spool.js';
import { alreadyPushedAhead } from '../../src/api/wal-push-ahead.js';

const SEG = '000000010000000000000003';
const sha256OfFile = async (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

describe('the push-ahead spool (pg_wal/pgbak_spool)', () => {
  let walDir: string;
  let path: string;
  beforeEach(() => {
    const root = mkdtempSync(join(tmpdir(), 'pgbak-spool-'));
    walDir = join(root, 'pg_wal');
    mkdirSync(join(walDir, 'archive_status'), { recursive: true });
    path = join(walDir, SEG);
    writeFileSync(path, Buffer.alloc(64 * 1024, 7));
  });
  afterEach(() => rmSync(join(walDir, '..'), { recursive: true, force: true }));

  it('a record with the file identity answers without reading the file; the record is consumed once', async () => {
    await recordPushed(walDir, SEG, await sha256OfFile(path), 'sig', await fileIdentity(path));
    expect(await consumePushed(walDir, SEG, path, 'other-flags')).toBe(false);
    expect(await consumePushed(walDir, SEG, path, 'sig')).toBe(true);
    expect(await consumePushed(walDir, SEG, path, 'sig')).toBe(false);
  });

  it('a file rewritten since it was pushed (other identity, other content) is not taken as pushed', async () => {
    await recordPushed(walDir, SEG, await sha256OfFile(path), 'sig', await fileIdentity(path));
    await new Promise((r) => setTimeout(r, 20));
    writeFileSync(path, Buffer.alloc(64 * 1024, 8));
    expect(await consumePushed(walDir, SEG, path, 'sig')).toBe(false);
  });

  it('same content under a new identity (copied back) still matches by sha256', async () => {
    const sha = await sha256OfFile(path);
    await recordPushed(walDir, SEG, sha, 'sig', 'dev:ino:size:old:old');
    expect(await consumePushed(walDir, SEG, path, 'sig')).toBe(true);
  });

  it('waitPushed: false at once without a worker; true when the running worker records it; false when it gave up', async () => {
    const t0 = Date.now();
    expect(await waitPushed(walDir, SEG, path, 'sig', 30_000)).toBe(false);
    expect(Date.now() - t0).toBeLessThan(5_000);

    expect(await claimWorker(walDir, 'sig')).toBe(true);
    expect(await workerRunning(walDir, 'sig')).toBe(true);
    const sha = await sha256OfFile(path);
    setTimeout(() => void recordPushed(walDir, SEG, sha, 'sig'), 200);
    expect(await waitPushed(walDir, SEG, path, 'sig', 30_000)).toBe(true);

    setTimeout(() => void recordFailed(walDir, SEG, 'sig'), 200);
    expect(await waitPushed(walDir, SEG, path, 'sig', 30_000)).toBe(false);
    await releaseWorker(walDir);
    expect(await workerRunning(walDir, 'sig')).toBe(false);
  });

  it('one worker per pg_wal: a live lock is respected, a dead one taken over', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      mkdirSync(join(walDir, 'pgbak_spool'), { recursive: true });
      writeFileSync(join(walDir, 'pgbak_spool', 'worker.lock'), JSON.stringify({ pid: child.pid, signature: 'sig' }));
      expect(await claimWorker(walDir, 'sig')).toBe(false);
      expect(await workerRunning(walDir, 'sig')).toBe(true);
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    expect(await workerRunning(walDir, 'sig')).toBe(false);
    expect(await claimWorker(walDir, 'sig')).toBe(true);
    await releaseWorker(walDir);
  });

  it('readyAfter lists the .ready segments after a name, in order', async () => {
    for (const n of ['000000010000000000000005', '000000010000000000000002', '000000010000000000000004', '00000002.history'])
      writeFileSync(join(walDir, 'archive_status', `${n}.ready`), '');
    expect(await readyAfter(walDir, SEG)).toEqual(['000000010000000000000004', '000000010000000000000005']);
    // From a name on (a cold start: the worker pushes the calling segment first).
    writeFileSync(join(walDir, 'archive_status', `${SEG}.ready`), '');
    expect(await readyAfter(walDir, SEG, true)).toEqual([SEG, '000000010000000000000004', '000000010000000000000005']);
  });

  it('waitPushed keeps waiting while the worker it started loads, before it holds the lock', async () => {
    let loading = true;
    setTimeout(() => {
      void sha256OfFile(path).then((sha) => recordPushed(walDir, SEG, sha, 'sig'));
      setTimeout(() => (loading = false), 200);
    }, 300);
    expect(await waitPushed(walDir, SEG, path, 'sig', 30_000, () => loading)).toBe(true);
    // It ended without a record: false (the call pushes itself).
    expect(await waitPushed(walDir, SEG, path, 'sig', 30_000, () => false)).toBe(false);
  });

  it('alreadyPushedAhead: a recorded segment is answered without starting a worker; with none running and no record it starts one', async () => {
    const mark = join(walDir, '..', 'started');
    const start = ['/bin/sh', '-c', `touch ${mark}`];
    await recordPushed(walDir, SEG, await sha256OfFile(path), 'sig', await fileIdentity(path));
    expect(await alreadyPushedAhead(path, 'sig', walDir, start)).toBe(true);
    expect(existsSync(mark)).toBe(false);
    // No record, no worker: the one it starts ends without recording it, so the caller pushes itself.
    expect(await alreadyPushedAhead(path, 'sig', walDir, start)).toBe(false);
    expect(existsSync(mark)).toBe(true);
  });

  it('removeStaleRecords drops records of segments that are no longer .ready, keeps the others', async () => {
    const other = '000000010000000000000004';
    writeFileSync(join(walDir, 'archive_status', `${other}.ready`), '');
    await recordPushed(walDir, SEG, 'a'.repeat(64), 'sig');
    await recordFailed(walDir, SEG, 'sig');
    await recordPushed(walDir, other, 'b'.repeat(64), 'sig');
    expect(await removeStaleRecords(walDir)).toBe(2);
    expect(existsSync(join(walDir, 'pgbak_spool', `${SEG}.pushed`))).toBe(false);
    expect(existsSync(join(walDir, 'pgbak_spool', `${SEG}.failed`))).toBe(false);
    expect(existsSync(join(walDir, 'pgbak_spool', `${other}.pushed`))).toBe(true);
  });
});
