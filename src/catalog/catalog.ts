import type { Readable } from 'node:stream';
import { isAppError, NotFoundError } from '../errors/index.js';
import type { BackupState } from '../retention/policy.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { parseKey, type ParsedKey } from './backup-name.js';
import { parseManifest, type Manifest, type VerificationRecord } from './manifest.js';

/**
 * One view of the backups in BACKUP_DIR and in the bucket, merged by base name. Object sizes
 * and names come from `list` (paginated by the backend); only manifests and verification
 * records (small JSON) are read.
 */

export type { BackupState } from '../retention/policy.js';
export type LocationName = 'local' | 'remote';

/** One stored key of a backup. */
export interface CopyObject {
  readonly key: string;
  readonly size: number;
}

/** The keys of one backup present in one backend. */
export interface CopyInfo {
  /** The dump; when the manifest names one, that one. */
  readonly artifact?: CopyObject | undefined;
  readonly globals?: CopyObject | undefined;
  readonly manifest?: CopyObject | undefined;
  readonly verification?: CopyObject | undefined;
  /** Further pgbak keys of the same backup (e.g. a `.dump` next to the `.dump.gpg` the manifest names). */
  readonly others: readonly CopyObject[];
}

/** One backup, merged across the local directory and the bucket. */
export interface CatalogEntry {
  /** `<prefix>_YYYYMMDD_HHMMSS` */
  readonly name: string;
  /** The file prefix (the database name made file-safe). */
  readonly prefix: string;
  /** From the manifest (`startedAt`); from the name when no manifest could be read. */
  readonly time: Date;
  /** From the manifest; undefined when there is none. */
  readonly database: string | undefined;
  readonly manifest?: Manifest | undefined;
  /**
   * good: the manifest parses and the artifact it names exists with its size in every location
   * that has the manifest; incomplete: an artifact without manifest or a manifest without
   * artifact; corrupt: unreadable manifest, size mismatch, or the newest verification failed.
   */
  readonly state: BackupState;
  /** Why the backup is not good, for people (empty when good). */
  readonly problems: readonly string[];
  readonly locations: { readonly local?: CopyInfo | undefined; readonly remote?: CopyInfo | undefined };
  readonly encrypted: boolean;
  /** Artifact size in bytes (the manifest's, else the stored object's; 0 when there is none). */
  readonly size: number;
  /** The newest readable verification record of either location. */
  readonly verification?: VerificationRecord | undefined;
}

export interface ListBackupsOptions {
  readonly local?: StorageBackend | undefined;
  readonly remote?: StorageBackend | undefined;
  /** Only backups whose file prefix is exactly this (the job's `filePrefix`). */
  readonly prefix?: string | undefined;
  /** How many manifests are read at once (default 16). */
  readonly concurrency?: number;
}

/** Manifests and verification records larger than this are not pgbak's: treated as unreadable. */
const MAX_JSON_BYTES = 1024 * 1024;

interface RawCopy {
  artifacts: CopyObject[];
  globals: CopyObject[];
  manifest?: CopyObject;
  verification?: CopyObject;
}

interface RawBackup {
  parsed: ParsedKey;
  copies: Partial<Record<LocationName, RawCopy>>;
}

/**
 * The contents of a small JSON object (manifest, verification or last-run record): undefined when
 * it vanished (NotFound), `tooLarge` past 1 MiB (not pgbak's); throws on any other failure.
 */
export async function readSmall(backend: StorageBackend, key: string): Promise<{ text: string } | { tooLarge: true } | undefined> {
  let stream: Readable;
  try {
    stream = await backend.get(key);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += buf.length;
    if (total > MAX_JSON_BYTES) {
      stream.destroy();
      return { tooLarge: true };
    }
    chunks.push(buf);
  }
  return { text: Buffer.concat(chunks).toString('utf8') };
}

function parseVerification(text: string): VerificationRecord | undefined {
  try {
    const v = JSON.parse(text) as Partial<VerificationRecord>;
    if (v.format !== 'pgbak-verification' || typeof v.ok !== 'boolean' || typeof v.verifiedAt !== 'string') return undefined;
    return Number.isNaN(Date.parse(v.verifiedAt)) ? undefined : (v as VerificationRecord);
  } catch {
    return undefined;
  }
}

/** Run `fn` over `items`, at most `limit` at a time. */
async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

async function collect(backend: StorageBackend, where: LocationName, prefix: string | undefined, into: Map<string, RawBackup>) {
  for await (const obj of backend.list(prefix === undefined ? undefined : `${prefix}_`)) {
    if (obj.key.includes('/')) continue; // pgbak writes at the root; anything deeper is not ours
    const parsed = parseKey(obj.key);
    if (!parsed || (prefix !== undefined && parsed.prefix !== prefix)) continue;
    let raw = into.get(parsed.base);
    if (!raw) into.set(parsed.base, (raw = { parsed, copies: {} }));
    const copy = (raw.copies[where] ??= { artifacts: [], globals: [] });
    const o: CopyObject = { key: obj.key, size: obj.size };
    if (parsed.role === 'artifact') copy.artifacts.push(o);
    else if (parsed.role === 'globals') copy.globals.push(o);
    else if (parsed.role === 'manifest') copy.manifest = o;
    else copy.verification = o;
  }
}

/** Read what one location holds of a backup: its manifest (or why not) and its verification record. */
interface ReadCopy {
  raw: RawCopy;
  manifest?: Manifest;
  manifestProblem?: string;
  verification?: VerificationRecord;
}

async function readCopy(backend: StorageBackend, raw: RawCopy): Promise<ReadCopy> {
  const out: ReadCopy = { raw };
  if (raw.manifest) {
    const got = await readSmall(backend, raw.manifest.key);
    if (!got) delete raw.manifest; // deleted since the listing (a concurrent prune)
    else if ('tooLarge' in got) out.manifestProblem = `manifest larger than ${MAX_JSON_BYTES} bytes`;
    else {
      try {
        out.manifest = parseManifest(got.text, raw.manifest.key);
      } catch (err) {
        if (!isAppError(err)) throw err;
        out.manifestProblem = err.message;
      }
    }
  }
  if (raw.verification) {
    const got = await readSmall(backend, raw.verification.key);
    if (got && 'text' in got) {
      const v = parseVerification(got.text);
      if (v) out.verification = v;
    }
  }
  return out;
}

/** State and CopyInfo of one location. Problems are prefixed with the location name. */
function judgeCopy(name: string, where: LocationName, c: ReadCopy, problems: { corrupt: string[]; incomplete: string[] }): CopyInfo {
  const { raw, manifest } = c;
  const byKey = (list: CopyObject[], key: string | undefined) => list.find((o) => o.key === key);
  const artifact = (manifest && byKey(raw.artifacts, manifest.artifact.key)) ?? (manifest ? undefined : raw.artifacts[0]);
  const globals = (manifest?.globals && byKey(raw.globals, manifest.globals.key)) ?? (manifest?.globals ? undefined : raw.globals[0]);
  const others = [...raw.artifacts, ...raw.globals].filter((o) => o !== artifact && o !== globals);

  if (c.manifestProblem) problems.corrupt.push(`${where}: ${c.manifestProblem}`);
  if (manifest) {
    if (manifest.name !== name) problems.corrupt.push(`${where}: manifest names ${manifest.name}`);
    if (!artifact) problems.incomplete.push(`${where}: manifest without artifact ${manifest.artifact.key}`);
    else if (artifact.size !== manifest.artifact.size) {
      problems.corrupt.push(`${where}: ${artifact.key} is ${artifact.size} bytes, manifest says ${manifest.artifact.size}`);
    }
    if (manifest.globals) {
      if (!globals) problems.corrupt.push(`${where}: globals ${manifest.globals.key} named by the manifest is missing`);
      else if (globals.size !== manifest.globals.size) {
        problems.corrupt.push(`${where}: ${globals.key} is ${globals.size} bytes, manifest says ${manifest.globals.size}`);
      }
    }
  }
  return { artifact, globals, manifest: raw.manifest, verification: raw.verification, others };
}

function entryOf(raw: RawBackup, read: Partial<Record<LocationName, ReadCopy>>): CatalogEntry {
  const name = raw.parsed.base;
  const problems = { corrupt: [] as string[], incomplete: [] as string[] };
  const locations: { local?: CopyInfo; remote?: CopyInfo } = {};
  for (const where of ['local', 'remote'] as const) {
    const c = read[where];
    if (c) locations[where] = judgeCopy(name, where, c, problems);
  }
  const copies = [read.local, read.remote].filter((c): c is ReadCopy => c !== undefined);
  const manifest = copies.find((c) => c.manifest)?.manifest;
  if (!copies.some((c) => c.raw.manifest)) {
    problems.incomplete.push(copies.some((c) => c.raw.artifacts.length) ? 'no manifest' : 'no manifest, no artifact');
  }

  const verification = copies
    .map((c) => c.verification)
    .filter((v): v is VerificationRecord => v !== undefined)
    .sort((a, b) => Date.parse(b.verifiedAt) - Date.parse(a.verifiedAt))[0];
  if (verification && !verification.ok) problems.corrupt.push(`verification failed (${verification.kind}, ${verification.verifiedAt})`);

  const state: BackupState = problems.corrupt.length ? 'corrupt' : problems.incomplete.length ? 'incomplete' : 'good';
  const firstArtifact = locations.local?.artifact ?? locations.remote?.artifact;
  return {
    name,
    prefix: raw.parsed.prefix,
    time: manifest ? new Date(manifest.startedAt) : raw.parsed.time,
    database: manifest?.database,
    manifest,
    state,
    problems: [...problems.corrupt, ...problems.incomplete],
    locations,
    encrypted: manifest ? manifest.encryption !== null : (firstArtifact ? parseKey(firstArtifact.key)?.encrypted : undefined) ?? false,
    size: manifest?.artifact.size ?? firstArtifact?.size ?? 0,
    verification,
  };
}

/**
 * Every pgbak backup in `local` and `remote`, merged by base name, newest first (ties by name).
 * Keys that are not pgbak names, or lie in a subdirectory, are ignored. Storage failures are
 * thrown (a backup is never judged from a failed read); a manifest that vanished between the
 * listing and the read counts as absent.
 */
export async function listBackups(options: ListBackupsOptions): Promise<CatalogEntry[]> {
  const raws = new Map<string, RawBackup>();
  const backends: [LocationName, StorageBackend][] = [];
  if (options.local) backends.push(['local', options.local]);
  if (options.remote) backends.push(['remote', options.remote]);
  for (const [where, backend] of backends) await collect(backend, where, options.prefix, raws);

  const jobs: { raw: RawBackup; where: LocationName; backend: StorageBackend }[] = [];
  for (const raw of raws.values()) {
    for (const [where, backend] of backends) if (raw.copies[where]) jobs.push({ raw, where, backend });
  }
  const read = new Map<RawBackup, Partial<Record<LocationName, ReadCopy>>>();
  await forEachLimit(jobs, options.concurrency ?? 16, async ({ raw, where, backend }) => {
    const c = await readCopy(backend, raw.copies[where]!);
    const slot = read.get(raw) ?? {};
    slot[where] = c;
    read.set(raw, slot);
  });

  const entries = [...raws.values()].map((raw) => entryOf(raw, read.get(raw) ?? {}));
  return entries.sort((a, b) => b.time.getTime() - a.time.getTime() || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
}
