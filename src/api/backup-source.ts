import { execFile } from 'node:child_process';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { pipeline } from 'node:stream/promises';
import { parseKey } from '../catalog/backup-name.js';
import { listBackups, type CatalogEntry, type LocationName } from '../catalog/catalog.js';
import type { Manifest, StoredFile } from '../catalog/manifest.js';
import { EncryptionError, IntegrityError, NotFoundError, UsageError } from '../errors/index.js';
import { gpgDecryptStage } from '../pipeline/gpg.js';
import { IntegrityStage } from '../pipeline/integrity-stage.js';
import type { StorageBackend } from '../storage/storage-backend.js';

/** The backends a command may read, after `--from` narrowed them. */
export interface SourceBackends {
  readonly local?: StorageBackend | undefined;
  readonly remote?: StorageBackend | undefined;
}

/** One stored copy of a backup's artifact. */
export interface SourceCopy {
  readonly where: LocationName;
  readonly backend: StorageBackend;
  readonly key: string;
  /** The stored object's size, from the listing. */
  readonly size: number;
}

/** `db_20240101_120000`, `db_20240101_120000.dump.gpg` or a path to one → `db_20240101_120000`. */
export function normalizeName(input: string): string {
  const file = input.slice(input.lastIndexOf('/') + 1);
  return parseKey(file)?.base ?? file;
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** The `count` names closest to `name`, closest first. */
export function closestNames(name: string, names: readonly string[], count = 5): string[] {
  return names
    .map((n) => ({ n, d: distance(name, n) }))
    .sort((x, y) => x.d - y.d || (x.n < y.n ? 1 : -1))
    .slice(0, count)
    .map((x) => x.n);
}

function where(backends: SourceBackends): string {
  return [backends.local?.location, backends.remote?.location].filter(Boolean).join(' and ') || 'no storage';
}

/**
 * The backup called `name` (any of its file names works too). An unknown name fails with
 * NotFoundError listing the closest names that exist.
 */
export async function findByName(backends: SourceBackends, input: string): Promise<CatalogEntry> {
  const name = normalizeName(input);
  const prefix = parseKey(`${name}.manifest.json`)?.prefix;
  if (prefix !== undefined) {
    const found = (await listBackups({ ...backends, prefix })).find((e) => e.name === name);
    if (found) return found;
  }
  const all = await listBackups({ ...backends });
  if (all.length === 0) throw new NotFoundError(`no backup named ${name}: there are no backups in ${where(backends)}`);
  const close = closestNames(name, all.map((e) => e.name));
  throw new NotFoundError(`no backup named ${name} in ${where(backends)}; closest: ${close.join(', ')}`, {
    hint: '`pgbak list` shows every backup',
  });
}

/** The newest backup with this file prefix whose state is `good` (or, with `anyState`, that has a manifest). */
export async function findLatest(backends: SourceBackends, prefix: string, options: { anyState?: boolean } = {}): Promise<CatalogEntry> {
  const entries = await listBackups({ ...backends, prefix });
  const found = entries.find((e) => (options.anyState ? e.manifest !== undefined : e.state === 'good'));
  if (found) return found;
  const others = entries.length ? ` (${entries.length} not good: newest ${entries[0]!.name}, ${entries[0]!.state})` : '';
  throw new NotFoundError(`no ${options.anyState ? '' : 'good '}backup of ${prefix} in ${where(backends)}${others}`, {
    hint: '`pgbak list` shows every backup and its state',
  });
}

/** The manifest of an entry, or an IntegrityError saying why there is none to trust. */
export function requireManifest(entry: CatalogEntry): Manifest {
  if (entry.manifest) return entry.manifest;
  throw new IntegrityError(`backup ${entry.name} has no readable manifest (${entry.problems.join('; ') || entry.state}): its integrity cannot be checked`, {
    hint: 'restore another backup; to use this file anyway, run pg_restore on it by hand',
  });
}

/**
 * The copies of the manifest's artifact, local first. A copy whose stored size already differs
 * from the manifest is left out (reported through `skipped`).
 */
export function artifactCopies(entry: CatalogEntry, manifest: Manifest, backends: SourceBackends): { copies: SourceCopy[]; skipped: string[] } {
  const copies: SourceCopy[] = [];
  const skipped: string[] = [];
  for (const w of ['local', 'remote'] as const) {
    const backend = backends[w];
    const art = entry.locations[w]?.artifact;
    if (!backend || !art || art.key !== manifest.artifact.key) continue;
    if (art.size !== manifest.artifact.size) {
      skipped.push(`${backend.urlOf(art.key)} is ${art.size} bytes, its manifest records ${manifest.artifact.size}${art.size < manifest.artifact.size ? ' (truncated)' : ''}`);
      continue;
    }
    copies.push({ where: w, backend, key: art.key, size: art.size });
  }
  return { copies, skipped };
}

/** Like artifactCopies, but fails when there is no usable copy. */
export function requireCopies(entry: CatalogEntry, manifest: Manifest, backends: SourceBackends): { copies: SourceCopy[]; skipped: string[] } {
  const found = artifactCopies(entry, manifest, backends);
  if (found.copies.length) return found;
  if (found.skipped.length) {
    throw new IntegrityError(`backup ${entry.name} is corrupt: ${found.skipped.join('; ')}`, {
      hint: 'the target was not touched; restore another backup (pgbak list)',
    });
  }
  throw new NotFoundError(`backup ${entry.name} has no copy of ${manifest.artifact.key} in ${where(backends)}`, {
    hint: backends.local && backends.remote ? 'the artifact is missing: restore another backup' : 'try the other location (--from local|remote)',
  });
}

function nullSink(): Writable {
  return new Writable({ write: (_c, _e, cb) => cb() });
}

/** Read a stored object completely and check its size and sha256; IntegrityError when they differ. */
export async function checkStored(backend: StorageBackend, file: StoredFile, options: { signal?: AbortSignal | undefined; onBytes?: (n: number) => void } = {}): Promise<void> {
  const source = await backend.get(file.key, { signal: options.signal });
  const check = new IntegrityStage({ label: backend.urlOf(file.key), size: file.size, sha256: file.sha256 }, { holdBack: 0, onBytes: options.onBytes });
  await pipeline([source, check, nullSink()], { signal: options.signal });
}

/**
 * The globals SQL of a backup (`pg_dumpall --globals-only`), checked against the manifest and
 * decrypted; from the first backend that has it. Holds password hashes: never log it.
 */
export async function readGlobals(manifest: Manifest, backends: readonly StorageBackend[], signal?: AbortSignal): Promise<string> {
  const g = manifest.globals;
  if (!g) throw new UsageError(`backup ${manifest.name} has no globals (it was made with BACKUP_GLOBALS=false)`, { hint: 'restore without --with-globals' });
  let lastError: unknown;
  for (const backend of backends) {
    if (!(await backend.stat(g.key))) continue;
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
      await pipeline([source, check, ...(manifest.encryption ? [gpgDecryptStage()] : []), collect], { signal });
      return Buffer.concat(chunks).toString('utf8');
    } catch (err) {
      lastError = err;
    }
  }
  if (lastError) throw lastError;
  throw new NotFoundError(`the globals of ${manifest.name} (${g.key}) are missing`);
}

/**
 * An encrypted backup needs the secret key in the keyring (GNUPGHOME or ~/.gnupg): checked
 * before the target is touched, so a missing key is a clear error rather than a failed restore.
 */
export async function requireSecretKey(manifest: Manifest): Promise<void> {
  const enc = manifest.encryption;
  if (!enc) return;
  const home = process.env.GNUPGHOME ? ` (GNUPGHOME=${process.env.GNUPGHOME})` : '';
  try {
    const { stdout } = await promisify(execFile)('gpg', ['--batch', '--no-tty', '--with-colons', '--list-secret-keys', '--', enc.fingerprint], { timeout: 30_000 });
    if (/^sec/m.test(stdout)) return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new EncryptionError('gpg-missing', 'gpg not found', { hint: 'install GnuPG: apt install gnupg' });
  }
  throw new EncryptionError('gpg-secret-key-missing', `cannot decrypt ${manifest.name}: the secret key ${enc.fingerprint} (${enc.recipient}) is not in the keyring${home}`, {
    hint: 'import the private key on this host: gpg --import private-key.asc',
  });
}
