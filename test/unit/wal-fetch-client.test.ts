import { execFile } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pushAheadSignature } from '../../src/api/wal-push-ahead.js';
import { prefetchDir } from '../../src/wal/wal-prefetch.js';
import { REPO_ROOT } from '../helpers/cli.js';

const execFileAsync = promisify(execFile);
const CLIENT = join(REPO_ROOT, 'bin', 'pgbak-wal-fetch');
const SEG = '00000001000000000000000A';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * bin/pgbak-wal-fetch, the sh client of restore_command: it takes what the prefetch worker holds
 * (src/wal/wal-prefetch.ts's directory) without node; anything else goes to `pgbak wal-fetch`,
 * here a stand-in node (PGBAK_NODE) whose exit 42 shows the call was handed over.
 */
describe('bin/pgbak-wal-fetch (restore_command without node for prefetched files)', () => {
  let root: string;
  let dir: string;
  let fakeNode: string;
  const envFile = '/etc/pgbak/wal.env';
  const run = async (args: string[]) => {
    try {
      const r = await execFileAsync('sh', [CLIENT, ...args], { cwd: root, env: { PATH: process.env.PATH, PGBAK_NODE: fakeNode } });
      return { code: 0, stderr: r.stderr };
    } catch (err) {
      const e = err as { code?: number; stderr?: string };
      return { code: e.code ?? -1, stderr: e.stderr ?? '' };
    }
  };
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'pgbak-fetch-client-'));
    dir = prefetchDir(root, pushAheadSignature({ envFile }));
    mkdirSync(dir, { recursive: true });
    fakeNode = join(root, 'node');
    writeFileSync(fakeNode, '#!/bin/sh\nexit 42\n');
    chmodSync(fakeNode, 0o755);
    writeFileSync(join(dir, 'worker.lock'), JSON.stringify({ pid: process.pid, signature: 'x' }));
    writeFileSync(join(dir, 'listed'), '');
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('moves a prefetched file to %p and exits 0; other settings flags go to node', async () => {
    writeFileSync(join(dir, SEG), 'wal bytes');
    const r = await run(['--env-file', envFile, SEG, 'pg_wal/RECOVERYXLOG']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/restored from the prefetched WAL file=00000001000000000000000A/);
    expect(readFileSync(join(root, 'pg_wal', 'RECOVERYXLOG'), 'utf8')).toBe('wal bytes');
    expect(existsSync(join(dir, SEG))).toBe(false);
    writeFileSync(join(dir, SEG), 'wal bytes');
    expect((await run(['--env-file', '/etc/pgbak/other.env', SEG, 'pg_wal/RECOVERYXLOG'])).code).toBe(42);
    expect((await run(['--set', 'X=1', '--env-file', envFile, SEG, 'pg_wal/RECOVERYXLOG'])).code).toBe(42);
  });

  it('a fresh .absent marker exits 1 (end of archive); a stale one, or no live worker, goes to node', async () => {
    writeFileSync(join(dir, '00000002.history.absent'), '');
    const r = await run(['--env-file', envFile, '00000002.history', 'pg_wal/RECOVERYHISTORY']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not in the WAL archive \(the prefetch worker listed it \d+s ago\) file=00000002\.history/);
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(dir, '00000002.history.absent'), old, old);
    writeFileSync(join(dir, 'worker.lock'), JSON.stringify({ pid: 999_999_999 }));
    expect((await run(['--env-file', envFile, '00000002.history', 'pg_wal/RECOVERYHISTORY'])).code).toBe(42);
  });

  it("answers PostgreSQL's repeated call for a segment from the worker's kept copy (a link), only in archive recovery with a fresh listing; else the worker or node", async () => {
    writeFileSync(join(dir, SEG), 'last segment');
    linkSync(join(dir, SEG), join(dir, `${SEG}.kept`));
    writeFileSync(join(root, 'recovery.signal'), '');
    expect((await run(['--env-file', envFile, SEG, 'pg_wal/RECOVERYXLOG'])).code).toBe(0);
    // The same name again (recovery ended in it): served from the kept copy, no .want to the worker.
    const again = await run(['--env-file', envFile, SEG, 'pg_wal/RECOVERYXLOG']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/restored from the kept copy of the prefetched WAL file=00000001000000000000000A/);
    expect(readFileSync(join(root, 'pg_wal', 'RECOVERYXLOG'), 'utf8')).toBe('last segment');
    expect(statSync(join(root, 'pg_wal', 'RECOVERYXLOG')).ino).toBe(statSync(join(dir, `${SEG}.kept`)).ino);
    expect(existsSync(join(dir, `${SEG}.want`))).toBe(false);

    // Not from the kept copy: a listing older than 10 s (the archive may have changed since), a
    // standby (its WAL receiver writes segment files), the end of recovery (recovery.signal gone).
    const declined = async () => {
      const asking = run(['--env-file', envFile, SEG, 'pg_wal/RECOVERYXLOG']);
      const deadline = Date.now() + 10_000;
      while (!existsSync(join(dir, `${SEG}.want`)) && Date.now() < deadline) await sleep(20);
      expect(existsSync(join(dir, `${SEG}.want`))).toBe(true);
      rmSync(join(dir, `${SEG}.want`));
      const r = await asking;
      expect(r.stderr).not.toMatch(/kept copy/);
      return r.code;
    };
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(dir, 'listed'), old, old);
    expect(await declined()).toBe(42);
    writeFileSync(join(dir, 'listed'), '');
    writeFileSync(join(root, 'standby.signal'), '');
    expect(await declined()).toBe(42);
    rmSync(join(root, 'standby.signal'));
    rmSync(join(root, 'recovery.signal'));
    expect(await declined()).toBe(42);
  });

  it('waits for a file the worker is fetching; asks for one it does not hold and goes to node when the worker declines', async () => {
    writeFileSync(join(dir, `${SEG}.pending`), '');
    const waiting = run(['--env-file', envFile, SEG, 'pg_wal/RECOVERYXLOG']);
    await sleep(500);
    writeFileSync(join(dir, SEG), 'late bytes');
    rmSync(join(dir, `${SEG}.pending`));
    expect((await waiting).code).toBe(0);
    expect(readFileSync(join(root, 'pg_wal', 'RECOVERYXLOG'), 'utf8')).toBe('late bytes');

    const asking = run(['--env-file', envFile, SEG, 'pg_wal/RECOVERYXLOG']);
    const deadline = Date.now() + 10_000;
    while (!existsSync(join(dir, `${SEG}.want`)) && Date.now() < deadline) await sleep(20);
    expect(existsSync(join(dir, `${SEG}.want`))).toBe(true);
    rmSync(join(dir, `${SEG}.want`)); // the worker's listing does not have it
    expect((await asking).code).toBe(42);
  });
});
