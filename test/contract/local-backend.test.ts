import { execFile } from 'node:child_process';
import fs, { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AppError, ExitCode, PermissionError } from '../../src/errors/index.js';
import { FLUSH_EVERY, LocalBackend } from '../../src/storage/local-backend.js';
import { tempDir } from '../helpers/services.js';
import { collect, MiB, runStorageContract, TestSource } from './storage-contract.js';

const execFileAsync = promisify(execFile);
const text = (s: string) => Readable.from([Buffer.from(s)]);

runStorageContract('local', async () => new LocalBackend(join(tempDir('pgbak-local-'), 'backups', 'db')));

describe('LocalBackend specifics', () => {
  it('reports its root as location and absolute paths as URLs', () => {
    const root = tempDir();
    const backend = new LocalBackend(root);
    expect(backend.kind).toBe('local');
    expect(backend.location).toBe(resolve(root));
    expect(backend.urlOf('a/b c.dump')).toBe(join(resolve(root), 'a', 'b c.dump'));
  });

  it('creates files 0600 and directories 0700', async () => {
    const root = join(tempDir(), 'new-root');
    const backend = new LocalBackend(root);
    await backend.put('db/2024/x.dump', text('secret rows'));
    expect(statSync(root).mode & 0o777).toBe(0o700);
    expect(statSync(join(root, 'db')).mode & 0o777).toBe(0o700);
    expect(statSync(join(root, 'db', '2024')).mode & 0o777).toBe(0o700);
    expect(statSync(join(root, 'db', '2024', 'x.dump')).mode & 0o777).toBe(0o600);
  });

  it('writes through a hidden temp file in the target directory that list skips', async () => {
    const root = tempDir();
    const backend = new LocalBackend(root);
    const source = new TestSource(3 * MiB, { pauseAt: MiB });
    const put = backend.put('d/f.dump', source);
    await source.stalled;
    const names = readdirSync(join(root, 'd'));
    expect(names).toHaveLength(1);
    expect(names[0]).toMatch(/^\.f\.dump\.tmp-\d+-[0-9a-f]+$/);
    expect(statSync(join(root, 'd', names[0]!)).mode & 0o777).toBe(0o600);
    expect(await collect(backend.list())).toEqual([]);
    source.release();
    await put;
    expect(readdirSync(join(root, 'd'))).toEqual(['f.dump']);
  });

  it('removes the temp file when the body fails', async () => {
    const root = tempDir();
    const backend = new LocalBackend(root);
    const source = new TestSource(3 * MiB, { failAt: MiB });
    await expect(backend.put('d/f.dump', source)).rejects.toBe(source.failure);
    expect(readdirSync(join(root, 'd'))).toEqual([]);
  });

  describe('flushes a big file to disk while it is written (fdatasync every 32 MiB)', () => {
    afterEach(() => vi.restoreAllMocks());

    it('in the background, on the temp file, and the bytes stored are the bytes sent', async () => {
      const root = tempDir();
      const backend = new LocalBackend(root);
      const real = fs.fdatasync;
      // What the directory holds at each flush: still only the hidden temp file.
      const seen: string[][] = [];
      const spy = vi.spyOn(fs, 'fdatasync').mockImplementation((fd, cb) => {
        seen.push(readdirSync(join(root, 'd')));
        real(fd, cb);
      });
      const source = new TestSource(FLUSH_EVERY * 3 + MiB);
      const result = await backend.put('d/f.dump', source);
      expect(FLUSH_EVERY).toBe(32 * MiB);
      expect(spy.mock.calls.length).toBeGreaterThanOrEqual(2);
      for (const names of seen) expect(names).toEqual([expect.stringMatching(/^\.f\.dump\.tmp-/)]);
      expect(result.size).toBe(source.total);
      expect(
        createHash('sha256')
          .update(readFileSync(join(root, 'd', 'f.dump')))
          .digest('hex'),
      ).toBe(source.digest());
    });

    it('a flush that fails (EIO) fails the store, and no file is left under any name', async () => {
      const root = tempDir();
      const backend = new LocalBackend(root);
      vi.spyOn(fs, 'fdatasync').mockImplementation((_fd, cb) =>
        setImmediate(() => cb(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', errno: -5, syscall: 'fdatasync' }))),
      );
      const err = await backend.put('d/f.dump', new TestSource(FLUSH_EVERY * 3)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).message).toMatch(/EIO/);
      expect((err as AppError).message).toContain(join(root, 'd', '.f.dump.tmp-'));
      expect(readdirSync(join(root, 'd'))).toEqual([]);
    });
  });

  it('lists nothing when the root does not exist', async () => {
    const backend = new LocalBackend(join(tempDir(), 'not', 'created'));
    expect(await collect(backend.list())).toEqual([]);
    expect(await collect(backend.list('a/b/'))).toEqual([]);
  });

  it('refuses keys that would leave the root or look like temp files', async () => {
    const backend = new LocalBackend(tempDir());
    for (const key of ['../escape', 'a/../../escape', '/abs', 'a//b', '', 'd/.x.tmp-1-2']) {
      await expect(backend.put(key, text('x'))).rejects.toMatchObject({ code: 'invalid-key' });
    }
  });

  it('a root below a regular file fails with an error naming the path (ENOTDIR, works as root)', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'plain-file'), 'not a directory');
    const backend = new LocalBackend(join(dir, 'plain-file', 'backups'));
    const err = await backend.put('x.dump', text('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    // Exit 6, as for a directory pgbak may not write (BACKUP_DIR=/etc/passwd/db), not an internal error.
    expect((err as AppError).exitCode).toBe(ExitCode.permission);
    expect((err as AppError).message).toContain(join(dir, 'plain-file', 'backups'));
    expect((err as AppError).message).toContain('a part of that path is a file, not a directory');
  });

  it('checkAccess: a root that does not exist yet is fine, a root below a regular file is refused naming it', async () => {
    const dir = tempDir();
    await expect(new LocalBackend(join(dir, 'not', 'yet')).checkAccess()).resolves.toBeUndefined();
    writeFileSync(join(dir, 'plain-file'), 'not a directory');
    const err = await new LocalBackend(join(dir, 'plain-file', 'backups')).checkAccess().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).message).toContain(join(dir, 'plain-file', 'backups'));
  });

  it('a directory the user cannot write gives PermissionError naming it (as root: checked in a child running as nobody)', async () => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    const readOnly = join(dir, 'read-only');
    mkdirSync(readOnly, { mode: 0o555 });
    chmodSync(readOnly, 0o555);
    const target = join(readOnly, 'backups');
    if (process.getuid?.() !== 0) {
      const err = await new LocalBackend(target).put('x.dump', text('x')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PermissionError);
      expect((err as PermissionError).message).toContain(target);
      return;
    }
    // root ignores modes: run the same call in a child process that drops to uid/gid 65534.
    const script = join(dir, 'probe.mts');
    const backendModule = resolve('src/storage/local-backend.ts');
    writeFileSync(
      script,
      `import { LocalBackend } from ${JSON.stringify(backendModule)};
import { Readable } from 'node:stream';
try {
  await new LocalBackend(${JSON.stringify(target)}).put('x.dump', Readable.from([Buffer.from('x')]));
  console.log(JSON.stringify({ ok: true }));
} catch (e) {
  console.log(JSON.stringify({ name: e.name, code: e.code, exitCode: e.exitCode, message: e.message }));
}
`,
    );
    chmodSync(script, 0o644);
    const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', script], {
      cwd: process.cwd(),
      uid: 65534,
      gid: 65534,
      env: { ...process.env, HOME: dir },
    });
    const result = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    expect(result).toMatchObject({ name: 'PermissionError', code: 'permission', exitCode: 6 });
    expect(result.message).toContain(target);
  });
});

describe('LocalBackend.removeStaleTemps (temp files of killed runs)', () => {
  /** The pid of a process that has exited (and was reaped): no process has it now. */
  async function deadPid(): Promise<number> {
    const child = execFile(process.execPath, ['-e', '0']);
    await new Promise((r) => child.once('exit', r));
    return child.pid!;
  }
  const ago = (path: string, ms: number) => {
    const t = new Date(Date.now() - ms);
    utimesSync(path, t, t);
  };

  it('removes only old temp files of processes that are gone; live, own, fresh and foreign files stay', async () => {
    const root = tempDir();
    mkdirSync(join(root, 'sub'));
    const dead = await deadPid();
    const sleeper = execFile('sleep', ['30']);
    try {
      const files = {
        stale: join(root, `.shop_20240101_000000.dump.tmp-${dead}-0123456789ab`),
        nested: join(root, 'sub', `.x.dump.tmp-${dead}-ba9876543210`),
        fresh: join(root, `.shop_20240102_000000.dump.tmp-${dead}-aaaaaaaaaaaa`),
        live: join(root, `.shop_20240103_000000.dump.tmp-${sleeper.pid}-bbbbbbbbbbbb`),
        own: join(root, `.shop_20240104_000000.dump.tmp-${process.pid}-cccccccccccc`),
        notPgbaks: join(root, `.notes.tmp-${dead}`),
        plain: join(root, 'shop_20240101_000000.dump'),
      };
      for (const path of Object.values(files)) writeFileSync(path, 'x'.repeat(100));
      for (const [name, path] of Object.entries(files)) if (name !== 'fresh') ago(path, 10 * 60_000);
      ago(files.fresh, 10_000); // dead writer, but written 10 s ago: within the one-minute floor

      const backend = new LocalBackend(root);
      const dry = await backend.removeStaleTemps({ dryRun: true });
      expect(dry.map((t) => t.path).sort()).toEqual([files.nested, files.stale].sort());
      expect(readdirSync(root)).toHaveLength(7); // sub/ and the 6 root files: all still there
      const removed = await backend.removeStaleTemps();
      expect(removed.map((t) => t.path).sort()).toEqual([files.nested, files.stale].sort());
      expect(removed.every((t) => t.pid === dead && t.size === 100)).toBe(true);
      expect(readdirSync(join(root, 'sub'))).toEqual([]);
      expect(readdirSync(root).sort()).toEqual(
        ['sub', ...[files.fresh, files.live, files.own, files.notPgbaks, files.plain].map((p) => p.slice(root.length + 1))].sort(),
      );
      // A minute later the fresh one goes too.
      expect((await backend.removeStaleTemps({ now: new Date(Date.now() + 60_000) })).map((t) => t.path)).toEqual([files.fresh]);
    } finally {
      sleeper.kill();
    }
  });

  it('a root that does not exist has nothing to remove', async () => {
    expect(await new LocalBackend(join(tempDir(), 'missing')).removeStaleTemps()).toEqual([]);
  });
});
