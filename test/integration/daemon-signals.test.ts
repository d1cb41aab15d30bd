import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backupEnv, PGBAK_BIN, runCli } from '../helpers/cli.js';
import { children, cmdlineOf, connectsToDatabase, waitFor } from '../helpers/processes.js';
import { createDatabase, execFileAsync, tempDir } from '../helpers/services.js';

/** About 15 MB of poorly compressible rows: pg_dump -Z9 | gpg needs a few seconds, long enough to press Ctrl-C. */
const BIG_SQL = `CREATE TABLE big (id int, a text, b text);
INSERT INTO big SELECT g, md5(g::text) || md5((g * 7)::text), md5((g * 3)::text) || md5(random()::text) FROM generate_series(1, 200000) g;`;

/** The command lines (NULs as spaces) of the processes naming `needle`, each read once: a process that ends meanwhile is not listed. */
function processesNaming(needle: string): string[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d) && Number(d) !== process.pid)
    .map((d) => cmdlineOf(Number(d)).replaceAll('\0', ' '))
    .filter((cmdline) => cmdline.includes(needle));
}

/** A PostgreSQL backend process (its title is `postgres: user db …`), not a client of pgbak's. */
const isServerBackend = (cmdline: string) => cmdline.startsWith('postgres: ');

/**
 * Nothing of pgbak's names `db` any more: no client process (pg_dump, gpg, pgbak) at all, and the
 * server's backends of its connections gone too. A backend ends on its own once it sees its
 * client's socket closed, a moment after pgbak exits, so those get a few seconds.
 */
async function expectNothingLeftNaming(db: string): Promise<void> {
  expect(processesNaming(db).filter((cmdline) => !isServerBackend(cmdline))).toEqual([]);
  await waitFor(() => processesNaming(db).length === 0, 10_000, `the server backends of ${db} to end`).catch(() => undefined);
  expect(processesNaming(db)).toEqual([]);
}

/**
 * pgbak started the way a terminal starts it: in a process group of its own (detached), so
 * `process.kill(-pid, 'SIGINT')` is exactly the terminal's Ctrl-C: SIGINT to every process of
 * the foreground group — pgbak, and any child that shares its group. Killed after 120 s at the latest.
 */
function startInItsOwnGroup(args: readonly string[], env: NodeJS.ProcessEnv, cwd: string) {
  const child = spawn(process.execPath, [PGBAK_BIN, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.resume();
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 120_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
  return { child, done, stderr: () => stderr };
}

/** `pgbak daemon` in its own group (see startInItsOwnGroup), once its first backup's pg_dump and gpg stream well under way. */
async function startDaemonInItsOwnGroup(label: string) {
  const db = await createDatabase(label, BIG_SQL);
  const dir = tempDir();
  const backups = join(dir, 'backups');
  const env = backupEnv({
    database: db,
    dir,
    encrypt: true,
    extra: { BACKUP_SCHEDULE: '* * * * * *', BACKUP_STOP_TIMEOUT: '5m', BACKUP_COMPRESSION: 'gzip:9', BACKUP_GLOBALS: 'false' },
  });
  const { child, done, stderr } = startInItsOwnGroup(['daemon'], env, dir);
  // pg_dump and gpg are running, and the dump is well under way.
  const workers = await waitFor(
    async () => {
      const kids = await children(child.pid!);
      const names = new Set(kids.map(([, comm]) => comm));
      const tmp = existsSync(backups) ? readdirSync(backups).find((f) => f.includes('.tmp-')) : undefined;
      const big = tmp !== undefined && (statSync(join(backups, tmp), { throwIfNoEntry: false })?.size ?? 0) > 256 * 1024;
      return names.has('pg_dump') && names.has('gpg') && big ? kids.map(([pid]) => pid) : undefined;
    },
    60_000,
    'pg_dump and gpg streaming a backup',
  );
  return { db, dir, env, backups, child, done, workers, stderr };
}

describe('Ctrl-C on pgbak daemon (SIGINT to its whole process group)', () => {
  it('finishes the running encrypted backup, which is good, then exits 0 with no child left', async () => {
    const d = await startDaemonInItsOwnGroup('dctrlc');
    process.kill(-d.child.pid!, 'SIGINT');
    const result = await d.done;
    expect(result.code, d.stderr().slice(-3000)).toBe(0);
    expect(d.stderr()).toContain('stopping (SIGINT)');
    expect(d.stderr()).not.toMatch(/backup failed|signal Interrupt/);
    expect(d.stderr()).toContain('daemon stopped');

    // The backup that was running is complete: its manifest exists and it restores.
    const files = readdirSync(d.backups);
    expect(files.filter((f) => f.includes('.tmp-'))).toEqual([]);
    const manifests = files.filter((f) => f.startsWith(`${d.db}_`) && f.endsWith('.manifest.json'));
    expect(manifests).toHaveLength(1);
    const manifest = JSON.parse(readFileSync(join(d.backups, manifests[0]!), 'utf8')) as { encryption?: unknown };
    expect(manifest.encryption).toBeTruthy();
    const verify = await runCli(['verify', '--latest', '--restore-test'], { env: d.env, cwd: d.dir, timeoutMs: 120_000 });
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout + verify.stderr).toMatch(/all equal to the backup's/);

    // No pg_dump or gpg outlived the daemon.
    for (const pid of d.workers) expect(cmdlineOf(pid), `child ${pid} is still running`).toBe('');
    await expectNothingLeftNaming(d.db);
  });

  it('a second Ctrl-C aborts the backup and still kills every child (they are in their own groups); nothing half-made is left', async () => {
    const d = await startDaemonInItsOwnGroup('dctrlc2');
    process.kill(-d.child.pid!, 'SIGINT');
    await waitFor(() => d.stderr().includes('stopping (SIGINT)'), 10_000, 'the first SIGINT to be logged');
    process.kill(-d.child.pid!, 'SIGINT');
    const result = await d.done;
    expect(result.code, d.stderr().slice(-3000)).toBe(0);
    expect(d.stderr()).toMatch(/aborting 1 running backup/);
    // pgbak killed its children itself: the abort is what the error says, not the terminal's signal.
    expect(d.stderr()).not.toMatch(/signal Interrupt/);
    for (const pid of d.workers) expect(cmdlineOf(pid), `child ${pid} is still running`).toBe('');
    await expectNothingLeftNaming(d.db);
    const files = existsSync(d.backups) ? readdirSync(d.backups) : [];
    expect(files.filter((f) => f.includes('.tmp-') || f.endsWith('.manifest.json'))).toEqual([]);
  });
});

describe('Ctrl-C (SIGINT) or a closed terminal (SIGHUP) on pgbak backup, to its whole process group', () => {
  it.each(['SIGINT', 'SIGHUP'] as const)(
    '%s: pgbak stops its own children: exit 130 with a one-line cause, no child left, nothing half-made',
    async (sig) => {
      const db = await createDatabase('bctrlc', BIG_SQL);
      const dir = tempDir();
      const backups = join(dir, 'backups');
      const env = backupEnv({ database: db, dir, encrypt: true, extra: { BACKUP_COMPRESSION: 'gzip:9', BACKUP_GLOBALS: 'false' } });
      const { child, stderr, done } = startInItsOwnGroup(['backup', '--no-upload'], env, dir);
      const workers = await waitFor(
        async () => {
          // The dump's pg_dump and gpg, not the preflight's `pg_dump --version` and gpg key check.
          const kids = await children(child.pid!);
          const dumping = kids.some(([pid, comm]) => comm === 'pg_dump' && connectsToDatabase(pid));
          const encrypting = kids.some(([pid, comm]) => comm === 'gpg' && cmdlineOf(pid).includes('--encrypt'));
          return dumping && encrypting ? kids.map(([pid]) => pid) : undefined;
        },
        60_000,
        'pg_dump and gpg streaming a backup',
      );
      process.kill(-child.pid!, sig);
      expect((await done).code, stderr().slice(-3000)).toBe(130);
      expect(stderr()).toMatch(new RegExp(`pgbak: error: .*interrupted by ${sig}`));
      // The cause is pgbak's abort, not gpg or pg_dump dying of the terminal's signal.
      expect(stderr()).not.toMatch(/signal Interrupt|signal Hangup|killed by SIG(INT|HUP)/);
      for (const pid of workers) expect(cmdlineOf(pid), `child ${pid} is still running`).toBe('');
      await expectNothingLeftNaming(db);
      const files = existsSync(backups) ? readdirSync(backups) : [];
      expect(files.filter((f) => f.includes('.tmp-') || f.endsWith('.manifest.json'))).toEqual([]);
    },
  );

  it('Ctrl-C while the preflight checks the gpg key: the cause is the interruption (exit 130), not a missing key', async () => {
    const db = await createDatabase('bctrlcpre');
    const dir = tempDir();
    // A gpg whose key check takes 10 s, so the Ctrl-C lands in it; anything else is the real gpg.
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const realGpg = (await execFileAsync('sh', ['-c', 'command -v gpg'])).stdout.trim();
    writeFileSync(join(bin, 'gpg'), `#!/bin/sh\ncase " $* " in *" --list-keys "*) sleep 10 ;; esac\nexec ${realGpg} "$@"\n`, {
      mode: 0o755,
    });
    const env = backupEnv({ database: db, dir, encrypt: true, extra: { PATH: `${bin}:${process.env.PATH}` } });
    const { child, stderr, done } = startInItsOwnGroup(['backup', '--no-upload'], env, dir);
    // The wrapper's sleep must have started too: a Ctrl-C that lands while the wrapper forks it
    // would miss the sleep, whose 10 s then hold the key check's pipe open.
    await waitFor(
      async () => {
        const check = (await children(child.pid!)).find(([pid]) => cmdlineOf(pid).includes('--list-keys'));
        return check !== undefined && (await children(check[0])).some(([, comm]) => comm === 'sleep');
      },
      30_000,
      'the gpg key check',
    );
    process.kill(-child.pid!, 'SIGINT');
    expect((await done).code, stderr().slice(-3000)).toBe(130);
    expect(stderr()).toMatch(/pgbak: error: .*interrupted by SIGINT/);
    expect(stderr()).not.toMatch(/GPG key not found/);
    const backups = join(dir, 'backups');
    expect(existsSync(backups) ? readdirSync(backups).filter((f) => f.includes('.tmp-') || f.endsWith('.manifest.json')) : []).toEqual([]);
  });
});
