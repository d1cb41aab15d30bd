import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NotFoundError, UsageError } from '../errors/index.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { decryptStage, type EncryptionInfo } from './decrypt.js';
import { IntegrityStage } from './integrity-stage.js';
import { nullSink } from './null-sink.js';

/** A stored object as a manifest records it: its key, size and sha256. */
export interface StoredDigest {
  readonly key: string;
  readonly size: number;
  readonly sha256: string;
}

/** One copy of a backup as `readGlobals` needs it: where it is, and what its manifest says of the globals. */
export interface GlobalsCopy {
  readonly backend: StorageBackend;
  readonly manifest: { readonly name: string; readonly globals: StoredDigest | null; readonly encryption: EncryptionInfo };
}

/** Read a stored object completely and check its size and sha256; IntegrityError when they differ. */
export async function checkStored(
  backend: StorageBackend,
  file: StoredDigest,
  options: { signal?: AbortSignal | undefined; onBytes?: (n: number) => void } = {},
): Promise<void> {
  const source = await backend.get(file.key, { signal: options.signal });
  const check = new IntegrityStage(
    { label: backend.urlOf(file.key), size: file.size, sha256: file.sha256 },
    { holdBack: 0, onBytes: options.onBytes },
  );
  await pipeline([source, check, nullSink()], { signal: options.signal });
}

/**
 * The globals SQL of a backup (`pg_dumpall --globals-only`), checked against each copy's own
 * manifest and decrypted; from the first copy that has it. Holds password hashes: never log it.
 */
export async function readGlobals(copies: readonly GlobalsCopy[], signal?: AbortSignal, ageIdentityFile?: string): Promise<string> {
  const first = copies[0]?.manifest;
  if (!first) throw new NotFoundError('no copy to read the globals from');
  if (copies.every((c) => !c.manifest.globals)) {
    throw new UsageError(`backup ${first.name} has no globals (it was made with BACKUP_GLOBALS=false)`, {
      hint: 'restore without --with-globals',
    });
  }
  let lastError: unknown;
  for (const { backend, manifest } of copies) {
    const g = manifest.globals;
    if (!g || !(await backend.stat(g.key))) continue;
    try {
      const source = await backend.get(g.key, { signal });
      const chunks: Buffer[] = [];
      const collect = new Writable({
        write(chunk: Buffer, _e, cb) {
          chunks.push(chunk);
          cb();
        },
      });
      const check = new IntegrityStage({ label: backend.urlOf(g.key), size: g.size, sha256: g.sha256 });
      const decrypt = decryptStage(manifest.encryption, ageIdentityFile);
      await pipeline([source, check, ...(decrypt ? [decrypt] : []), collect], { signal });
      return Buffer.concat(chunks).toString('utf8');
    } catch (err) {
      lastError = err;
    }
  }
  if (lastError) throw lastError;
  throw new NotFoundError(`the globals of ${first.name} (${first.globals?.key ?? 'none'}) are missing`);
}
