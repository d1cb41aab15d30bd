import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Manifest } from '../catalog/manifest.js';
import { diskFullOf, fsError, IntegrityError } from '../errors/index.js';
import { forEachLimit } from '../model/for-each-limit.js';
import type { ChildStage } from '../pipeline/child-stage.js';
import { decompressStage } from '../pipeline/compression.js';
import { decryptStage } from '../pipeline/decrypt.js';
import { IntegrityStage } from '../pipeline/integrity-stage.js';
import { nullSink } from '../pipeline/null-sink.js';
import { verifiedHandoff } from '../pipeline/verified-handoff.js';
import { checkArchiveReadable } from '../postgres/archive-header.js';
import { pgRestoreStage } from '../postgres/pg-restore.js';
import { listToc, type Toc } from '../postgres/toc.js';
import type { SourceCopy } from '../catalog/find-backup.js';
import type { Logger } from '../logging/logger.js';
import type { PgTool } from '../postgres/pg-tools.js';
import type { StorageBackend } from '../storage/storage-backend.js';

/** What restore-run.ts passes on (its RunRestoreOptions, which it cannot share without an import cycle). */
export interface DirectoryRestoreOptions {
  readonly manifest: Manifest;
  readonly copy: SourceCopy;
  readonly targetUrl: string;
  readonly jobs: number;
  readonly pgRestore: PgTool;
  readonly spoolDir: string;
  readonly ageIdentityFile?: string | undefined;
  readonly extraArgs?: readonly string[];
  readonly beforeTouch?: () => Promise<void>;
  readonly logger: Logger;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: (p: {
    phase: 'download' | 'restore';
    bytes: number;
    totalBytes: number;
    objects: number;
    totalObjects: number | undefined;
    elapsedMs: number;
  }) => void;
}

/**
 * Restore of a directory-format backup (BACKUP_JOBS ≥ 2): every file its manifest lists is
 * fetched (from BACKUP_DIR or the bucket) into a private temporary directory, checked against
 * its size and sha256 on the way, decrypted and decompressed; only when all are good is the
 * target touched, with `pg_restore --jobs N <directory>`. The directory goes in every case.
 */
export async function runDirectoryRestore(o: DirectoryRestoreOptions): Promise<{
  mode: 'spool';
  singleTransaction: false;
  toc: Toc | undefined;
  objects: number;
  verifyMs: number;
  restoreMs: number;
}> {
  const { manifest, copy, logger } = o;
  const files = manifest.directory!.files;
  const total = files.reduce((n, f) => n + f.size, 0);
  const t0 = Date.now();
  let phase: 'download' | 'restore' = 'download';
  let bytes = 0;
  let objects = 0;
  let toc: Toc | undefined;
  const progress = () =>
    o.onProgress?.({ phase, bytes, totalBytes: total, objects, totalObjects: toc?.entries, elapsedMs: Date.now() - t0 });
  logger.info('restore source', { source: copy.backend.urlOf(copy.key), mode: 'spool', files: files.length, jobs: o.jobs });

  await mkdir(o.spoolDir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
    throw fsError(err, 'create spool directory', o.spoolDir);
  });
  const temp = await mkdtemp(join(o.spoolDir, '.pgbak-restore-')).catch((err: unknown) => {
    throw fsError(
      err,
      'create a temporary directory in',
      o.spoolDir,
      'a directory-format backup is restored from a local copy of its files: free space there',
    );
  });
  try {
    const dir = join(temp, 'dump');
    await mkdir(dir, { mode: 0o700 });
    progress();
    // A file that fails stops the others (forEachLimit waits for them before the spool goes).
    await forEachLimit(
      files,
      Math.max(1, o.jobs),
      async (f, signal) => {
        const name = plainName(f.key, manifest);
        const out = join(dir, name);
        let got = 0;
        const check = new IntegrityStage(
          { label: copy.backend.urlOf(f.key), size: f.size, sha256: f.sha256 },
          {
            holdBack: 0,
            onBytes: (n) => {
              bytes += n - got;
              got = n;
            },
          },
        );
        await verifiedHandoff(
          await openFile(copy.backend, f.key, signal),
          check,
          [...unwrapStages(manifest, o.ageIdentityFile).stages, createWriteStream(out, { mode: 0o600 })],
          true,
          signal,
        ).catch((err: unknown) => {
          throw diskFullOf(err, out) ?? err;
        });
        progress();
      },
      o.signal,
    );
    logger.info('every file matches its manifest', { files: files.length, bytes: total });
    await checkArchiveReadable(o.pgRestore, join(dir, 'toc.dat'), `backup ${manifest.name}`);
    toc = await listToc(o.pgRestore, dir);
    const verifyMs = Date.now() - t0;

    await o.beforeTouch?.();
    phase = 'restore';
    const t1 = Date.now();
    progress();
    await pipeline(
      [
        pgRestoreStage({
          tool: o.pgRestore,
          targetUrl: o.targetUrl,
          jobs: o.jobs,
          singleTransaction: false,
          file: dir,
          extraArgs: o.extraArgs,
          onObject: () => {
            objects++;
          },
          onError: (line) => logger.error(line),
        }),
        nullSink(),
      ],
      { signal: o.signal },
    );
    progress();
    return { mode: 'spool', singleTransaction: false, toc, objects, verifyMs, restoreMs: Date.now() - t1 };
  } finally {
    await rm(temp, { recursive: true, force: true }).catch((err: unknown) =>
      logger.warn('could not remove the spool directory', { dir: temp, error: String(err) }),
    );
  }
}

/** The file's name in pg_dump's directory: its stored name less pgbak's `.zst`/`.lz4` and `.gpg`/`.age`. */
function plainName(key: string, manifest: Manifest): string {
  let name = key.slice(key.lastIndexOf('/') + 1);
  if (manifest.encryption) name = name.replace(/\.(gpg|age)$/, '');
  if (manifest.compression.by === 'stream') name = name.replace(/\.(zst|lz4)$/, '');
  if (!/^[\w.]+$/.test(name) || name.startsWith('.'))
    throw new IntegrityError(`manifest of ${manifest.name} names an unexpected file ${key}`);
  return name;
}

/**
 * The decrypt and decompress stages an artifact needs to become a plain archive; `writer` is the
 * one that may write a spool file itself: a decompressor (zstd and lz4 exit non-zero when a write
 * fails). gpg is never given the file: it exits 0 when its last write fails (a full disk), so
 * node writes what gpg or age output and sees the error itself.
 */
export function unwrapStages(manifest: Manifest, ageIdentityFile: string | undefined): { stages: Duplex[]; writer?: ChildStage } {
  const stages: Duplex[] = [];
  const decrypt = decryptStage(manifest.encryption, ageIdentityFile);
  if (decrypt) stages.push(decrypt);
  if (manifest.compression.by !== 'stream') return { stages };
  const writer = decompressStage(manifest.compression.method === 'lz4' ? 'lz4' : 'zstd');
  return { stages: [...stages, writer], writer };
}

/** A stored file's bytes: read from disk when the backend has it there, else downloaded. */
export async function openFile(backend: StorageBackend, key: string, signal: AbortSignal | undefined): Promise<Readable> {
  const path = backend.localPath(key);
  if (path !== undefined) return createReadStream(path, { highWaterMark: 1024 * 1024 });
  return backend.get(key, { signal });
}
