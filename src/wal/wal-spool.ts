import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The push-ahead spool: `pg_wal/pgbak_spool/<segment>.pushed`, one small file per segment that a
 * wal-push stored ahead of PostgreSQL's own call for it, holding the segment's sha256 and the
 * signature of the settings flags it was pushed with. PostgreSQL's later call finds it, checks the
 * file in pg_wal still has that sha256 and the flags are the same, removes the record and exits
 * 0 at once: no configuration, no S3 client, no round trip. Under pg_wal, so base backups
 * (pg_basebackup leaves pg_wal's contents out) never carry it.
 * This module loads only node built-ins: the fast path runs before anything else.
 */
export function spoolDir(walDir: string): string {
  return join(walDir, 'pgbak_spool');
}

/** The signature of a command's settings flags (--config, --job, --env-file, --set …). */
export function flagsSignature(flags: readonly string[]): string {
  return createHash('sha256').update(JSON.stringify(flags)).digest('hex').slice(0, 32);
}

export async function recordPushed(walDir: string, name: string, sha256: string, signature: string): Promise<void> {
  const dir = spoolDir(walDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  await writeFile(tmp, JSON.stringify({ sha256, signature }) + '\n', { mode: 0o600 });
  await rename(tmp, join(dir, `${name}.pushed`));
}

/** Is `name` recorded as pushed with these flags (whatever its content)? */
export async function spooled(walDir: string, name: string, signature: string): Promise<boolean> {
  try {
    const r = JSON.parse(await readFile(join(spoolDir(walDir), `${name}.pushed`), 'utf8')) as { signature?: string };
    return r.signature === signature;
  } catch {
    return false;
  }
}

/**
 * The fast path of `wal-push`: true (and the record removed) when the file at `path` was pushed
 * ahead with these flags and still has the sha256 recorded then. Anything else (no record, other
 * flags, other content, an unreadable file) is false: the normal push decides.
 */
export async function consumePushed(walDir: string, name: string, path: string, signature: string): Promise<boolean> {
  const record = join(spoolDir(walDir), `${name}.pushed`);
  let r: { sha256?: string; signature?: string };
  try {
    r = JSON.parse(await readFile(record, 'utf8')) as { sha256?: string; signature?: string };
  } catch {
    return false;
  }
  if (r.signature !== signature || !r.sha256) return false;
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch {
    return false;
  }
  if (hash.digest('hex') !== r.sha256) return false;
  await rm(record, { force: true });
  return true;
}
