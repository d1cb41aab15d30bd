import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pushSettingsSignature } from '../../src/api/wal-push-ahead.js';
import { claimWorker, fileIdentity, recordPushed, releaseWorker } from '../../src/wal/wal-spool.js';
import { REPO_ROOT } from '../helpers/cli.js';

const execFileAsync = promisify(execFile);
const CLIENT = join(REPO_ROOT, 'bin', 'pgbak-wal-push');
const SEG = '00000001000000000000000A';

/**
 * bin/pgbak-wal-push, the sh client: it answers a segment the push-ahead worker stored (the record
 * written by src/wal/wal-spool.ts) without node; anything else goes to `pgbak wal-push`, here a
 * stand-in node (PGBAK_NODE=/bin/false) whose exit 1 shows the call was handed over.
 */
describe('bin/pgbak-wal-push (archive_command without node for segments pushed ahead)', () => {
  let root: string;
  let walDir: string;
  let envFile: string;
  let sig: string;
  const run = async (args: string[]) => {
    try {
      const r = await execFileAsync('sh', [CLIENT, ...args], { cwd: root, env: { PATH: process.env.PATH, PGBAK_NODE: '/bin/false' } });
      return { code: 0, stderr: r.stderr };
    } catch (err) {
      const e = err as { code?: number; stderr?: string };
      return { code: e.code ?? -1, stderr: e.stderr ?? '' };
    }
  };
  const record = async () => {
    const path = join(walDir, SEG);
    await recordPushed(walDir, SEG, createHash('sha256').update(readFileSync(path)).digest('hex'), sig, await fileIdentity(path));
  };
  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), 'pgbak-client-'));
    walDir = join(root, 'pg_wal');
    mkdirSync(join(walDir, 'archive_status'), { recursive: true });
    writeFileSync(join(walDir, SEG), Buffer.alloc(32 * 1024, 3));
    envFile = join(root, 'wal.env');
    writeFileSync(envFile, 'STORAGE_BUCKET=a\n');
    sig = await pushSettingsSignature({ envFile });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('a segment recorded with the same flags and an unchanged file: exit 0 without node, the record consumed', async () => {
    await record();
    const r = await run(['--env-file', envFile, `pg_wal/${SEG}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`archived ahead by an earlier wal-push file=${SEG}`));
    expect(existsSync(join(walDir, 'pgbak_spool', `${SEG}.pushed`))).toBe(false);
    // Consumed: the next call for it is the CLI's.
    expect((await run(['--env-file', envFile, `pg_wal/${SEG}`])).code).toBe(1);
  });

  it('other flags, a rewritten file, other arguments or a history file: handed to pgbak wal-push', async () => {
    await record();
    expect((await run(['--env-file', '/etc/pgbak/other.env', `pg_wal/${SEG}`])).code).toBe(1);
    expect((await run(['--env-file', '/etc/pgbak/wal.env', `pg_wal/${SEG}`])).code).toBe(1);
    expect((await run(['--env-file', envFile, '--set', 'X=1', `pg_wal/${SEG}`])).code).toBe(1);
    expect((await run(['--env-file', envFile, 'pg_wal/00000002.history'])).code).toBe(1);
    await new Promise((r) => setTimeout(r, 20));
    writeFileSync(join(walDir, SEG), Buffer.alloc(32 * 1024, 4));
    expect((await run(['--env-file', envFile, `pg_wal/${SEG}`])).code).toBe(1);
    expect(existsSync(join(walDir, 'pgbak_spool', `${SEG}.pushed`))).toBe(true);
  });

  it('a backup history file recorded by the worker: exit 0 without node; unrecorded with no worker, or a malformed name: handed to pgbak wal-push', async () => {
    const backup = `${SEG}.00000028.backup`;
    writeFileSync(join(walDir, backup), 'START WAL LOCATION: 0/A000028 (file 00000001000000000000000A)\n');
    const r0 = await run(['--env-file', envFile, `pg_wal/${backup}`]);
    expect(r0.code, 'no record, no worker: node').toBe(1);
    const path = join(walDir, backup);
    await recordPushed(walDir, backup, createHash('sha256').update(readFileSync(path)).digest('hex'), sig, await fileIdentity(path));
    const r = await run(['--env-file', envFile, `pg_wal/${backup}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`archived ahead by an earlier wal-push file=${backup}`);
    for (const odd of [
      `${SEG}.0000002.backup`,
      `${SEG}.00000028.00000028.backup`,
      `${SEG}.0000002g.backup`,
      `${SEG.slice(1)}.00000028.backup`,
    ]) {
      writeFileSync(join(walDir, odd), 'x');
      await recordPushed(walDir, odd, createHash('sha256').update('x').digest('hex'), sig, await fileIdentity(join(walDir, odd)));
      expect((await run(['--env-file', envFile, `pg_wal/${odd}`])).code, odd).toBe(1);
    }
  });

  it('the settings file edited since the segment was pushed ahead: handed to pgbak wal-push, which pushes it with the new settings', async () => {
    await record();
    await new Promise((r) => setTimeout(r, 20));
    writeFileSync(envFile, 'STORAGE_BUCKET=b\n');
    expect(await pushSettingsSignature({ envFile })).not.toBe(sig);
    expect((await run(['--env-file', envFile, `pg_wal/${SEG}`])).code).toBe(1);
    expect(existsSync(join(walDir, 'pgbak_spool', `${SEG}.pushed`))).toBe(true);
  });

  it('a worker running with settings edited since it started is not waited for', async () => {
    expect(await claimWorker(walDir, sig)).toBe(true);
    try {
      await new Promise((r) => setTimeout(r, 20));
      writeFileSync(envFile, 'STORAGE_BUCKET=b\n');
      setTimeout(() => void record(), 3000);
      const started = Date.now();
      expect((await run(['--env-file', envFile, `pg_wal/${SEG}`])).code).toBe(1);
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      await releaseWorker(walDir);
    }
  });

  it('while the worker is on the segment it waits for the record', async () => {
    expect(await claimWorker(walDir, sig)).toBe(true);
    try {
      setTimeout(() => void record(), 500);
      const r = await run(['--env-file', envFile, `pg_wal/${SEG}`]);
      expect(r.code, r.stderr).toBe(0);
    } finally {
      await releaseWorker(walDir);
    }
  });
});
