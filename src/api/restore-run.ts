import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Manifest } from '../catalog/manifest.js';
import { diskFullOf, fsError } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import { ChildStage } from '../pipeline/child-stage.js';
import { verifiedHandoff } from '../pipeline/verified-handoff.js';
import { IntegrityStage } from '../pipeline/integrity-stage.js';
import { pgRestoreStage } from '../postgres/pg-restore.js';
import { checkArchiveReadable } from '../postgres/archive-header.js';
import { nullSink } from '../pipeline/null-sink.js';
import type { PgTool } from '../postgres/pg-tools.js';
import { listToc, TocTap, type Toc } from '../postgres/toc.js';
import type { SourceCopy } from '../catalog/find-backup.js';
import { checkStored } from '../pipeline/check-stored.js';
import { openFile, runDirectoryRestore, unwrapStages } from './restore-directory.js';

/**
 * How an artifact reaches pg_restore:
 * - file: a local plain archive, checked first, then `pg_restore [--jobs N] <file>`;
 * - spool: download/decrypt/decompress into a temporary file while checking, then
 *   `pg_restore --jobs N <file>` (only when parallel restore needs a seekable file);
 * - stream: source → checksum → [gpg -d] → [zstd -d] → pg_restore stdin, no disk needed. A
 *   local copy is checked in a first pass; a remote one cannot be, so pg_restore then runs with
 *   --single-transaction and the checksum stage holds the archive's tail back until the digest
 *   matched: on a mismatch pg_restore is killed before it could COMMIT.
 */
export type RestoreMode = 'file' | 'spool' | 'stream';

export interface RestoreProgress {
  readonly phase: 'verify' | 'download' | 'restore';
  /** Artifact bytes read in this phase. */
  readonly bytes: number;
  readonly totalBytes: number;
  readonly objects: number;
  /** Objects in the archive's table of contents, once known. */
  readonly totalObjects: number | undefined;
  readonly elapsedMs: number;
}

export interface RunRestoreOptions {
  readonly manifest: Manifest;
  readonly copy: SourceCopy;
  readonly targetUrl: string;
  readonly jobs: number;
  readonly pgRestore: PgTool;
  /** The copy was checked against the manifest moments ago (verify): skip the first pass. */
  readonly preVerified?: boolean;
  /** Where a spool file may go (a hidden temporary directory is made in it). */
  readonly spoolDir: string;
  /** AGE_IDENTITY_FILE, for an age-encrypted backup. */
  readonly ageIdentityFile?: string | undefined;
  readonly extraArgs?: readonly string[];
  /** Runs once the artifact is known good (or, streaming from the bucket, just before pg_restore starts). */
  readonly beforeTouch?: () => Promise<void>;
  readonly logger: Logger;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: (p: RestoreProgress) => void;
}

export interface RunRestoreResult {
  readonly mode: RestoreMode;
  readonly singleTransaction: boolean;
  readonly toc: Toc | undefined;
  readonly objects: number;
  /** Time spent checking (and spooling) before pg_restore started. */
  readonly verifyMs: number;
  /** Time pg_restore ran. */
  readonly restoreMs: number;
}

/**
 * source → checksum → [gpg -d] → [zstd -d] → `file`. A decompressor writes the file itself, so the
 * archive's plain bytes never pass through node (less work and less garbage for node's heap), and
 * gpg → zstd talk through a kernel pipe; otherwise node writes it. A full disk: exit 6 naming the
 * file, not the symptom.
 */
async function spoolTo(
  file: string,
  source: Readable,
  check: IntegrityStage,
  makeStages: () => { stages: Duplex[]; writer?: ChildStage },
  signal: AbortSignal | undefined,
): Promise<void> {
  const handle = await open(file, 'wx', 0o600).catch((err: unknown) => {
    source.destroy();
    throw fsError(err, 'create spool file', file);
  });
  try {
    // Child stages start in the next tick: made here, after the file is open, and joined by kernel pipes.
    const { stages, writer } = makeStages();
    ChildStage.connect(stages);
    const downstream = writer
      ? [...stages.slice(0, -1), writer.writeTo(handle.fd), nullSink()]
      : [...stages, createWriteStream(file, { fd: handle })]; // it closes the handle itself
    await verifiedHandoff(source, check, downstream, true, signal);
  } catch (err) {
    throw diskFullOf(err, file) ?? err;
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** Restore one copy of an artifact into `targetUrl` (which must exist). */
export async function runRestore(o: RunRestoreOptions): Promise<RunRestoreResult> {
  const { manifest, copy, logger } = o;
  // BACKUP_JOBS ≥ 2: a directory-format backup, one stored file per file of pg_dump's directory.
  if (manifest.directory) return runDirectoryRestore(o);
  const path = copy.backend.localPath(copy.key);
  const local = path !== undefined;
  const plain = manifest.encryption === null && manifest.compression.by !== 'stream';
  const mode: RestoreMode = local && plain ? 'file' : o.jobs > 1 ? 'spool' : 'stream';
  const preChecked = local && mode !== 'spool';
  const singleTransaction = mode === 'stream' && !local;
  const label = copy.backend.urlOf(copy.key);
  const expected = { label, size: manifest.artifact.size, sha256: manifest.artifact.sha256 };
  const t0 = Date.now();
  let objects = 0;
  let toc: Toc | undefined;
  let phase: RestoreProgress['phase'] = 'verify';
  let bytes = 0;
  let last = 0;
  const progress = (force = false) => {
    if (!o.onProgress || (!force && Date.now() - last < 200)) return;
    last = Date.now();
    o.onProgress({ phase, bytes, totalBytes: manifest.artifact.size, objects, totalObjects: toc?.entries, elapsedMs: Date.now() - t0 });
  };
  const onBytes = (n: number) => {
    bytes = n;
    progress();
  };
  logger.info('restore source', { source: label, mode, jobs: o.jobs, singleTransaction });

  let spoolDir: string | undefined;
  try {
    // 1. Before the target is touched: check the copy (file, stream from disk) or spool it.
    if (preChecked && !o.preVerified) {
      progress(true);
      await checkStored(copy.backend, manifest.artifact, { signal: o.signal, onBytes });
      logger.info('artifact matches its manifest', { source: label, bytes: manifest.artifact.size, sha256: manifest.artifact.sha256 });
    }
    let file: string | undefined = mode === 'file' ? path : undefined;
    if (mode === 'spool') {
      phase = 'download';
      progress(true);
      await mkdir(o.spoolDir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
        throw fsError(err, 'create spool directory', o.spoolDir);
      });
      spoolDir = await mkdtemp(join(o.spoolDir, '.pgbak-restore-')).catch((err: unknown) => {
        throw fsError(
          err,
          'create spool directory in',
          o.spoolDir,
          'pg_restore --jobs needs a file: free space there, or restore without --jobs',
        );
      });
      file = join(spoolDir, `${manifest.name}.dump`);
      logger.info('spooling the archive for a parallel restore', { file });
      const check = new IntegrityStage(expected, { holdBack: 0, onBytes });
      const spoolFile = file;
      await spoolTo(
        spoolFile,
        await openFile(copy.backend, copy.key, o.signal),
        check,
        () => unwrapStages(manifest, o.ageIdentityFile),
        o.signal,
      );
      logger.info('artifact matches its manifest', { source: label, bytes: manifest.artifact.size, sha256: manifest.artifact.sha256 });
    }
    if (file) {
      // Before the target is touched: an archive newer than this pg_restore reads is exit 4, with the client to install.
      await checkArchiveReadable(o.pgRestore, file, `backup ${manifest.name}`);
      toc = await listToc(o.pgRestore, file);
    }
    const verifyMs = Date.now() - t0;

    // 2. The target.
    await o.beforeTouch?.();
    phase = 'restore';
    bytes = 0;
    const t1 = Date.now();
    progress(true);
    const restoreStage = pgRestoreStage({
      tool: o.pgRestore,
      targetUrl: o.targetUrl,
      jobs: o.jobs,
      singleTransaction,
      file,
      extraArgs: o.extraArgs,
      onObject: () => {
        objects++;
        progress();
      },
      onError: (line) => logger.error(line),
    });
    if (file) {
      await pipeline([restoreStage, nullSink()], { signal: o.signal });
    } else {
      const tap = new TocTap(o.pgRestore);
      void tap.toc.then((t) => {
        toc = t;
        progress(true);
      });
      const check = new IntegrityStage(expected, { onBytes });
      await verifiedHandoff(
        await openFile(copy.backend, copy.key, o.signal),
        check,
        [...unwrapStages(manifest, o.ageIdentityFile).stages, tap, restoreStage, nullSink()],
        !preChecked,
        o.signal,
      );
      toc = await tap.toc;
    }
    progress(true);
    return { mode, singleTransaction, toc, objects, verifyMs, restoreMs: Date.now() - t1 };
  } finally {
    if (spoolDir)
      await rm(spoolDir, { recursive: true, force: true }).catch((err: unknown) =>
        logger.warn('could not remove the spool directory', { dir: spoolDir, error: String(err) }),
      );
  }
}

/** A short random suffix. */
export function randomSuffix(): string {
  return randomBytes(4).toString('hex');
}
