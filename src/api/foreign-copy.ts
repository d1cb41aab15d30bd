import { spawn } from 'node:child_process';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseKey } from '../catalog/backup-name.js';
import type { LocationName } from '../catalog/catalog.js';
import { abortCause, AppError, ExitCode, IntegrityError, isAppError } from '../errors/index.js';
import { childEnv } from '../pipeline/child-env.js';
import { decompressStage } from '../pipeline/compression.js';
import { gpgDecryptStage } from '../pipeline/gpg.js';
import { nullSink } from '../pipeline/null-sink.js';
import { HashStage } from '../pipeline/hash-stage.js';
import { ArchiveHeaderTap, readArchiveHeader, type ArchiveHeader, type HeaderRead } from '../postgres/archive-header.js';
import type { PgTool } from '../postgres/pg-tools.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { CHILD_SPAWN_OPTIONS, execChild, trackChild } from '../pipeline/child-stage.js';

/**
 * Reading a foreign dump for `pgbak adopt`: once, as a stream (never buffered whole), for its
 * size and sha256, its archive header (`pg_restore -l`; a `.gpg` is decrypted in the stream
 * first, a plain dump on disk is read by pg_restore from its path) and, for a `.gpg`, the key it
 * was encrypted to. The file is only read.
 */

/** Tool runs in their own process group, killed on pgbak's exit (see child-stage.ts). */
const execFileAsync = execChild;

/** What reading one copy found. */
export interface CheckedCopy {
  readonly where: LocationName;
  readonly backend: StorageBackend;
  readonly key: string;
  readonly size: number;
  readonly sha256: string;
  readonly encrypted: boolean;
  readonly header: ArchiveHeader;
  readonly fingerprint: string | undefined;
}

/** Why one copy cannot be adopted (reported in the result, never thrown out of adopt). */
export class AdoptRefusedError extends AppError {}

/** Keeps the first `limit` bytes that pass (the head of a `.gpg`: its public-key packets). */
class HeadCapture extends Transform {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  constructor(private readonly limit = 64 * 1024) {
    super({ highWaterMark: 1024 * 1024 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    if (this.kept < this.limit) {
      const part = chunk.subarray(0, this.limit - this.kept);
      this.chunks.push(Buffer.from(part));
      this.kept += part.length;
    }
    callback(null, chunk);
  }
  get head(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/**
 * The key a `.gpg` was encrypted to: the key ids of its public-key packets (`gpg --list-only
 * --list-packets` on the head, nothing decrypted), as the primary key's fingerprint when the
 * keyring has the key, else the key id; undefined when gpg cannot tell.
 */
async function encryptionKeyOf(head: Buffer): Promise<string | undefined> {
  const listed = await new Promise<string>((resolve) => {
    const child = spawn('gpg', ['--batch', '--no-tty', '--list-only', '--list-packets'], {
      stdio: ['pipe', 'pipe', 'ignore'],
      env: childEnv(),
      ...CHILD_SPAWN_OPTIONS,
    });
    trackChild(child);
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (s: string) => (out += s));
    child.stdin.on('error', () => undefined);
    child.on('error', () => resolve(''));
    child.on('close', () => resolve(out)); // the head is truncated on purpose: the exit code says nothing
    child.stdin.end(head);
  });
  const keyid = /:pubkey enc packet:.*\bkeyid ([0-9A-F]{16})/.exec(listed)?.[1];
  if (!keyid || /^0+$/.test(keyid)) return undefined;
  try {
    const { stdout } = await execFileAsync(
      'gpg',
      ['--batch', '--no-tty', '--with-colons', '--fixed-list-mode', '--list-keys', '--', keyid],
      { timeout: 30_000, env: childEnv() },
    );
    return (
      stdout
        .split('\n')
        .find((l) => l.startsWith('fpr:'))
        ?.split(':')[9] || keyid
    );
  } catch {
    return keyid;
  }
}

/** Read one foreign copy once: size, sha256, the archive header, the encryption key. */
export async function readForeignCopy(o: {
  where: LocationName;
  backend: StorageBackend;
  key: string;
  listedSize: number;
  tool: () => Promise<PgTool>;
  signal: AbortSignal | undefined;
}): Promise<CheckedCopy> {
  const { backend, key } = o;
  const url = backend.urlOf(key);
  const parsed = parseKey(key);
  const encrypted = parsed?.encryption === 'gpg';
  const stream = parsed?.streamCompression;
  const tool = await o.tool();
  const source = await backend.get(key, { signal: o.signal });
  const hash = new HashStage();
  const head = encrypted ? new HeadCapture() : undefined;
  // A plain dump on disk: pg_restore reads the file itself; anything else: the stream, decrypted first.
  const path = backend.localPath(key);
  const onDisk = path !== undefined && !encrypted && !stream;
  const tap = onDisk ? undefined : new ArchiveHeaderTap(tool);
  const fromFile: Promise<HeaderRead> | undefined = onDisk ? readArchiveHeader(tool, path) : undefined;
  try {
    await pipeline(
      [
        source,
        hash,
        ...(head ? [head, gpgDecryptStage()] : []),
        ...(stream ? [decompressStage(stream)] : []),
        ...(tap ? [tap] : []),
        nullSink(),
      ],
      { signal: o.signal },
    );
  } catch (err) {
    if (o.signal?.aborted) throw abortCause(o.signal);
    if (isAppError(err)) throw err;
    throw new IntegrityError(`cannot read ${url}: ${(err as Error).message}`, { cause: err, hint: 'the file was left as it is' });
  }
  if (hash.bytes !== o.listedSize) {
    throw new IntegrityError(`${url} changed while it was read (${hash.bytes} bytes read, ${o.listedSize} listed)`, {
      hint: 'is something still writing it? run `pgbak adopt` again once it is finished',
    });
  }
  const read = await (fromFile ?? tap!.result);
  if (!read.ok) {
    throw new AdoptRefusedError('adopt-not-an-archive', `${url} is not a PostgreSQL archive pg_restore can read: ${read.error}`, {
      exitCode: ExitCode.integrity,
      hint: 'adopt takes only pg_dump --format=custom archives (encrypted with gpg or not); an "unsupported version" needs a pg_restore as new as the pg_dump that made it (PG_DUMP_PATH). The file was left as it is and stays foreign',
    });
  }
  if ((read.header.format ?? '').toUpperCase() !== 'CUSTOM') {
    throw new AdoptRefusedError(
      'adopt-not-custom-format',
      `${url} is a ${read.header.format ?? 'unknown'}-format archive, not custom format (pg_dump --format=custom)`,
      {
        exitCode: ExitCode.integrity,
        hint: 'pgbak restores custom-format archives only; the file was left as it is and stays foreign',
      },
    );
  }
  const fingerprint = head ? await encryptionKeyOf(head.head) : undefined;
  return { where: o.where, backend, key, size: hash.bytes, sha256: hash.sha256, encrypted, header: read.header, fingerprint };
}
