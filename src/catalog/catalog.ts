import type { Readable } from 'node:stream';
import { isAppError, NotFoundError } from '../errors/index.js';
import type { BackupState } from '../model/backup-state.js';
import { forEachLimit } from '../model/for-each-limit.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { parseDirectoryKey, parseKey, type ParsedKey } from './backup-name.js';
import { dumpBytes, parseManifest, type Manifest, type VerificationRecord } from './manifest.js';
import { parseRunRecord, type RunRecord } from './run-record.js';

/**
 * One view of the backups in BACKUP_DIR and in the bucket, merged by base name. Object sizes
 * and names come from `list` (paginated by the backend); only manifests and verification
 * records (small JSON) are read.
 */

export type { BackupState } from '../model/backup-state.js';
export type LocationName = 'local' | 'remote';

/** One stored key of a backup. */
export interface CopyObject {
  readonly key: string;
  readonly size: number;
}

/**
 * One backup as one backend holds it, judged ON ITS OWN: a broken or missing copy in one place
 * never condemns a good copy elsewhere, and a copy is `good` only when its own manifest parses
 * and the artifact it names is there with the right size.
 */
export interface CopyInfo {
  /** The dump; when the manifest names one, that one. */
  readonly artifact?: CopyObject | undefined;
  readonly globals?: CopyObject | undefined;
  readonly manifest?: CopyObject | undefined;
  readonly verification?: CopyObject | undefined;
  /** The run record (`<name>.run.json`) that claimed the name here. */
  readonly run?: CopyObject | undefined;
  /** Further pgbak keys of the same backup (e.g. a `.dump` next to the `.dump.gpg` the manifest names). */
  readonly others: readonly CopyObject[];
  /**
   * good: own manifest parses and names this backup, its artifact (and globals) are here with the
   * recorded sizes, and this copy's newest verification did not fail; incomplete: no manifest, or
   * a manifest whose artifact is missing; corrupt: unreadable manifest, size mismatch, missing
   * globals, failed verification; foreign: not pgbak's (no manifest and no run record anywhere).
   */
  readonly state: BackupState;
  /** Why this copy is not good (empty when good). */
  readonly problems: readonly string[];
  /** This copy's own manifest, when it parses. */
  readonly manifestData?: Manifest | undefined;
  /** This copy's verification record, when readable. */
  readonly verificationData?: VerificationRecord | undefined;
  /** This copy's run record, read only when the copy has no manifest. */
  readonly runData?: RunRecord | undefined;
}

/** One backup, merged across the local directory and the bucket. */
export interface CatalogEntry {
  /** `<prefix>_YYYYMMDD_HHMMSS` */
  readonly name: string;
  /** The file prefix (the database name made file-safe). */
  readonly prefix: string;
  /** From the manifest (`startedAt`); from the name when no manifest could be read. */
  readonly time: Date;
  /** From the manifest (else the run record); undefined when there is neither. */
  readonly database: string | undefined;
  /** The server's system identifier, from the manifest or the run record, when recorded. */
  readonly systemIdentifier: string | undefined;
  /** The manifest of the first good copy (local first), else the first that parses. */
  readonly manifest?: Manifest | undefined;
  /**
   * The best state of its copies: good when at least one copy is good; else corrupt when one is;
   * else incomplete (pgbak's own, unfinished or failed); foreign when no copy has a manifest or a
   * run record (a file named like a backup that pgbak did not make: retention keeps it).
   */
  readonly state: BackupState;
  /** Every problem of every copy, prefixed with its location, and disagreements between copies (empty when all is well). */
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
  /** Manifests an earlier listing of the same run read (retention, then the report). */
  readonly reads?: ManifestReads | undefined;
}

/**
 * The manifests one run has read, by location, key and size. A manifest is written once,
 * create-only, and never changed (pgbak only ever deletes one), so the steps after a backup, which
 * list the same catalog one after the other (retention, then the report's size history), read
 * each manifest once: the second listing costs the listings alone, not one GET per backup again.
 * Made for one run and dropped with it (the daemon makes a new one each run).
 */
export class ManifestReads {
  readonly #texts = new WeakMap<StorageBackend, Map<string, { size: number; text: string }>>();

  /** The text of `object` from `backend`, read once; what is missing or too large is read again each time. */
  async read(backend: StorageBackend, object: CopyObject): Promise<{ text: string } | { tooLarge: true } | undefined> {
    let texts = this.#texts.get(backend);
    if (!texts) this.#texts.set(backend, (texts = new Map()));
    const known = texts.get(object.key);
    if (known && known.size === object.size) return { text: known.text };
    const got = await readSmall(backend, object.key);
    if (got && 'text' in got) texts.set(object.key, { size: object.size, text: got.text });
    return got;
  }
}

/** Manifests and verification records larger than this are not pgbak's: treated as unreadable. */
const MAX_JSON_BYTES = 1024 * 1024;

interface RawCopy {
  artifacts: CopyObject[];
  globals: CopyObject[];
  manifest?: CopyObject;
  verification?: CopyObject;
  run?: CopyObject;
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

async function collect(backend: StorageBackend, where: LocationName, prefix: string | undefined, into: Map<string, RawBackup>) {
  for await (const obj of backend.list(prefix === undefined ? undefined : `${prefix}_`)) {
    // pgbak writes at the root, but for the files of a directory-format backup (`<name>.dir/…`)
    const parsed = obj.key.includes('/') ? parseDirectoryKey(obj.key) : parseKey(obj.key);
    if (!parsed || (prefix !== undefined && parsed.prefix !== prefix)) continue;
    let raw = into.get(parsed.base);
    if (!raw) into.set(parsed.base, (raw = { parsed, copies: {} }));
    const copy = (raw.copies[where] ??= { artifacts: [], globals: [] });
    const o: CopyObject = { key: obj.key, size: obj.size };
    if (parsed.role === 'artifact') copy.artifacts.push(o);
    else if (parsed.role === 'globals') copy.globals.push(o);
    else if (parsed.role === 'manifest') copy.manifest = o;
    else if (parsed.role === 'run') copy.run = o;
    else copy.verification = o;
  }
}

/** Read what one location holds of a backup: its manifest (or why not) and its verification record. */
interface ReadCopy {
  raw: RawCopy;
  manifest?: Manifest;
  manifestProblem?: string;
  verification?: VerificationRecord;
  run?: RunRecord;
}

async function readCopy(backend: StorageBackend, raw: RawCopy, reads: ManifestReads | undefined): Promise<ReadCopy> {
  const out: ReadCopy = { raw };
  if (raw.manifest) {
    const got = reads ? await reads.read(backend, raw.manifest) : await readSmall(backend, raw.manifest.key);
    if (!got)
      delete raw.manifest; // deleted since the listing (a concurrent prune)
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
  // Without a manifest, the run record says whose the files are (ownership, database, server).
  if (raw.run && !raw.manifest) {
    const got = await readSmall(backend, raw.run.key);
    if (got && 'text' in got) {
      const r = parseRunRecord(got.text);
      if (r) out.run = r;
    }
  }
  return out;
}

/** The CopyInfo of one location, judged on its own (ownership is decided across copies later). */
function judgeCopy(name: string, c: ReadCopy): CopyInfo {
  const { raw, manifest } = c;
  const byKey = (list: CopyObject[], key: string | undefined) => list.find((o) => o.key === key);
  const artifact = (manifest && byKey(raw.artifacts, manifest.artifact.key)) ?? (manifest ? undefined : raw.artifacts[0]);
  const globals = (manifest?.globals && byKey(raw.globals, manifest.globals.key)) ?? (manifest?.globals ? undefined : raw.globals[0]);
  const others = [...raw.artifacts, ...raw.globals].filter((o) => o !== artifact && o !== globals);
  const corrupt: string[] = [];
  const incomplete: string[] = [];

  if (c.manifestProblem) corrupt.push(c.manifestProblem);
  if (manifest) {
    if (manifest.name !== name) corrupt.push(`manifest names ${manifest.name}`);
    if (!artifact) incomplete.push(`manifest without artifact ${manifest.artifact.key}`);
    else if (artifact.size !== manifest.artifact.size)
      corrupt.push(`${artifact.key} is ${artifact.size} bytes, manifest says ${manifest.artifact.size}`);
    corrupt.push(...directoryProblems(manifest, raw.artifacts));
    if (manifest.globals) {
      if (!globals) corrupt.push(`globals ${manifest.globals.key} named by the manifest is missing`);
      else if (globals.size !== manifest.globals.size)
        corrupt.push(`${globals.key} is ${globals.size} bytes, manifest says ${manifest.globals.size}`);
    }
  } else if (!raw.manifest) {
    incomplete.push(
      artifact
        ? 'no manifest'
        : globals
          ? 'no manifest, no artifact (globals only)'
          : raw.run
            ? 'no manifest, no artifact (run record only)'
            : 'no manifest, no artifact',
    );
  }
  if (c.verification && !c.verification.ok) corrupt.push(`verification failed (${c.verification.kind}, ${c.verification.verifiedAt})`);
  const state: BackupState = corrupt.length ? 'corrupt' : incomplete.length ? 'incomplete' : 'good';
  return {
    artifact,
    globals,
    manifest: raw.manifest,
    verification: raw.verification,
    run: raw.run,
    others,
    state,
    problems: [...corrupt, ...incomplete],
    manifestData: manifest,
    verificationData: c.verification,
    runData: c.run,
  };
}

/** A directory-format backup (BACKUP_JOBS): each file its manifest lists must be here with its size. */
function directoryProblems(manifest: Manifest, present: readonly CopyObject[]): string[] {
  return (manifest.directory?.files ?? [])
    .filter((f) => f.key !== manifest.artifact.key)
    .flatMap((f) => {
      const o = present.find((p) => p.key === f.key);
      if (!o) return [`${f.key} named by the manifest is missing`];
      return o.size === f.size ? [] : [`${o.key} is ${o.size} bytes, manifest says ${f.size}`];
    });
}

/** What two copies' manifests disagree on (empty when they agree or either is missing). */
function disagreement(a: Manifest | undefined, b: Manifest | undefined): string[] {
  if (!a || !b) return [];
  const out: string[] = [];
  if (a.database !== b.database) out.push(`database ${a.database} vs ${b.database}`);
  if (a.artifact.key !== b.artifact.key || a.artifact.size !== b.artifact.size || a.artifact.sha256 !== b.artifact.sha256) {
    out.push(
      `artifact ${a.artifact.key} ${a.artifact.size} bytes sha256 ${a.artifact.sha256.slice(0, 12)}… vs ${b.artifact.key} ${b.artifact.size} bytes sha256 ${b.artifact.sha256.slice(0, 12)}…`,
    );
  }
  if ((a.globals?.sha256 ?? null) !== (b.globals?.sha256 ?? null)) out.push('globals sha256');
  if ((a.server.systemIdentifier ?? '') !== (b.server.systemIdentifier ?? '')) out.push('server');
  return out;
}

function entryOf(raw: RawBackup, read: Partial<Record<LocationName, ReadCopy>>): CatalogEntry {
  const name = raw.parsed.base;
  const judged: { local?: CopyInfo; remote?: CopyInfo } = {};
  for (const where of ['local', 'remote'] as const) {
    const c = read[where];
    if (c) judged[where] = judgeCopy(name, c);
  }
  const copies = [judged.local, judged.remote].filter((c): c is CopyInfo => c !== undefined);
  // pgbak's own only with a manifest (even a broken one) or a run record in some location.
  const owned = copies.some((c) => c.manifest !== undefined || c.run !== undefined);
  const locations: { local?: CopyInfo; remote?: CopyInfo } = {};
  for (const where of ['local', 'remote'] as const) {
    const c = judged[where];
    if (!c) continue;
    locations[where] = owned
      ? c
      : { ...c, state: 'foreign', problems: ['no manifest and no run record: not made by pgbak (`pgbak adopt` takes it in)'] };
  }
  const all = [locations.local, locations.remote].filter((c): c is CopyInfo => c !== undefined);
  const problems = (['local', 'remote'] as const).flatMap((w) => (locations[w]?.problems ?? []).map((p) => `${w}: ${p}`));
  const differ = disagreement(locations.local?.manifestData, locations.remote?.manifestData);
  if (differ.length) problems.push(`the local and remote manifests disagree (${differ.join('; ')})`);

  const state: BackupState = all.some((c) => c.state === 'good')
    ? 'good'
    : all.some((c) => c.state === 'corrupt')
      ? 'corrupt'
      : all.some((c) => c.state === 'incomplete')
        ? 'incomplete'
        : 'foreign';
  const manifest = all.find((c) => c.state === 'good')?.manifestData ?? all.find((c) => c.manifestData)?.manifestData;
  const run = all.find((c) => c.runData)?.runData;
  const verification = all
    .map((c) => c.verificationData)
    .filter((v): v is VerificationRecord => v !== undefined)
    .sort((a, b) => Date.parse(b.verifiedAt) - Date.parse(a.verifiedAt))[0];

  const firstArtifact = locations.local?.artifact ?? locations.remote?.artifact;
  return {
    name,
    prefix: raw.parsed.prefix,
    time: manifest ? new Date(manifest.startedAt) : run ? new Date(run.startedAt) : raw.parsed.time,
    database: manifest?.database ?? run?.database,
    systemIdentifier: manifest?.server.systemIdentifier ?? run?.systemIdentifier,
    manifest,
    state,
    problems,
    locations,
    encrypted: manifest ? manifest.encryption !== null : ((firstArtifact ? parseKey(firstArtifact.key)?.encrypted : undefined) ?? false),
    size: (manifest && dumpBytes(manifest)) ?? firstArtifact?.size ?? 0,
    verification,
  };
}

/** Whose backups a command looks at: one database, and (when known) one server. */
export interface BackupIdentity {
  readonly database: string;
  /** The server's system identifier; undefined when it is not known (the server is down). */
  readonly systemIdentifier?: string | undefined;
}

/**
 * Does the entry belong to this database, and to this server when both the entry and the
 * identity name one? An entry that records no database (a foreign file, a bare leftover) belongs
 * by its name alone, which file prefixes make unambiguous.
 */
function belongsTo(entry: CatalogEntry, identity: BackupIdentity): boolean {
  if (entry.database !== undefined && entry.database !== identity.database) return false;
  if (identity.systemIdentifier && entry.systemIdentifier && entry.systemIdentifier !== identity.systemIdentifier) return false;
  return true;
}

/** A job's share of a listing, and whether its server is ambiguous there. */
export interface OwnBackups {
  /** Every entry of the identity's database, whatever its server. */
  readonly ofDatabase: CatalogEntry[];
  /** The entries that belong to the identity (database, and server when known). */
  readonly mine: CatalogEntry[];
  /**
   * The servers the database's backups come from when the identity's server is unknown and
   * there are several of them (then "latest", "status" and "prune" cannot be decided); else empty.
   */
  readonly ambiguousServers: string[];
}

/** Split a listing into the identity's backups, as restore, verify, status and prune all need it. */
export function ownBackups(entries: readonly CatalogEntry[], identity: BackupIdentity): OwnBackups {
  const ofDatabase = entries.filter((e) => belongsTo(e, { database: identity.database }));
  const servers = serversOf(ofDatabase);
  return {
    ofDatabase,
    mine: ofDatabase.filter((e) => belongsTo(e, identity)),
    ambiguousServers: !identity.systemIdentifier && servers.length > 1 ? servers : [],
  };
}

/** The distinct servers (system identifiers) the entries were made on, newest first. */
export function serversOf(entries: readonly CatalogEntry[]): string[] {
  const out: string[] = [];
  for (const e of entries) if (e.systemIdentifier && !out.includes(e.systemIdentifier)) out.push(e.systemIdentifier);
  return out;
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
    const c = await readCopy(backend, raw.copies[where]!, options.reads);
    const slot = read.get(raw) ?? {};
    slot[where] = c;
    read.set(raw, slot);
  });

  const entries = [...raws.values()].map((raw) => entryOf(raw, read.get(raw) ?? {}));
  return entries.sort((a, b) => b.time.getTime() - a.time.getTime() || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
}
