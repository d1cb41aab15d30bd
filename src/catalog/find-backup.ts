import { parseKey } from './backup-name.js';
import { editDistance } from '../model/edit-distance.js';
import { listBackups, ownBackups, serversOf, type BackupIdentity, type CatalogEntry, type LocationName } from './catalog.js';
import type { Manifest } from './manifest.js';
import { AppError, ExitCode, IntegrityError, isAppError, NotFoundError } from '../errors/index.js';
import { formatDuration } from '../model/human-units.js';
import type { StorageBackend } from '../storage/storage-backend.js';

/** The backends a command may read, after `--from` narrowed them. */
export interface SourceBackends {
  readonly local?: StorageBackend | undefined;
  readonly remote?: StorageBackend | undefined;
}

/** One stored copy of a backup's artifact, and the manifest (that copy's own) it is checked against. */
export interface SourceCopy {
  readonly where: LocationName;
  readonly backend: StorageBackend;
  readonly key: string;
  /** The stored object's size, from the listing. */
  readonly size: number;
  /** This location's own manifest: a copy is only ever checked against the manifest stored beside it. */
  readonly manifest: Manifest;
}

/** `db_20240101_120000`, `db_20240101_120000.dump.gpg` or a path to one → `db_20240101_120000`. */
export function normalizeName(input: string): string {
  const file = input.slice(input.lastIndexOf('/') + 1);
  return parseKey(file)?.base ?? file;
}

/**
 * What the user typed, for a message: a plain name as it is, anything else quoted, with control
 * and invisible format characters (ANSI escapes, bidi overrides) escaped; at most 80 characters.
 * normalizeName keeps only the last path segment (`x; rm -rf /` → ""), so the normalized name
 * alone would show nothing, or something the user never typed.
 */
export function shownName(input: string): string {
  const chars = [...input];
  const cut = chars.length > 80 ? chars.slice(0, 79).join('') + '…' : input;
  if (/^[A-Za-z0-9_.-]+$/.test(cut)) return cut;
  return JSON.stringify(cut).replace(/\p{Cf}/gu, (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`);
}

/** The `count` names closest to `name`, closest first. */
export function closestNames(name: string, names: readonly string[], count = 5): string[] {
  return names
    .map((n) => ({ n, d: editDistance(name, n) }))
    .sort((x, y) => x.d - y.d || (x.n < y.n ? 1 : -1))
    .slice(0, count)
    .map((x) => x.n);
}

function where(backends: SourceBackends): string {
  return [backends.local?.location, backends.remote?.location].filter(Boolean).join(' and ') || 'no storage';
}

/**
 * The catalog as restore, verify, list and status read it: BACKUP_DIR and the bucket, and when
 * the bucket cannot be read (endpoint unreachable or silent, bucket missing, credentials refused)
 * BACKUP_DIR alone, exactly as `--from local` would, with ONE warning saying so. A failure of
 * BACKUP_DIR itself, or a stop by a signal, is thrown.
 */
export class CatalogSource {
  private bucketFailure: AppError | undefined;
  private readonly warned: string[] = [];

  constructor(private readonly configured: SourceBackends) {}

  /** The backends the entries come from: the bucket is left out once it failed. */
  get backends(): SourceBackends {
    return this.bucketFailure ? { local: this.configured.local } : this.configured;
  }

  /** The bucket's failure, when it could not be read and BACKUP_DIR alone was used. */
  get bucketError(): AppError | undefined {
    return this.bucketFailure;
  }

  /** The one warning about the bucket (empty when it was read). */
  get warnings(): readonly string[] {
    return this.warned;
  }

  /** Every backup (of `prefix`, when given), newest first. */
  async list(prefix?: string): Promise<CatalogEntry[]> {
    const { local, remote } = this.backends;
    try {
      return await listBackups({ local, remote, prefix });
    } catch (err) {
      if (!local || !remote || !isBucketFailure(err)) throw err;
      this.bucketFailure = err;
      this.warned.push(
        `the bucket ${remote.location} cannot be read (${err.message}): using the backups in BACKUP_DIR ${local.location} alone, as with --from local`,
      );
      return listBackups({ local, prefix });
    }
  }

  /** A hint for "nothing found" that says the bucket was not searched, when it was not. */
  hint(base: string): string {
    const b = this.bucketFailure;
    if (!b) return base;
    return `only BACKUP_DIR was searched (as with --from local): the bucket could not be read (${b.message}${b.hint ? `; ${b.hint}` : ''}); ${base}`;
  }
}

/** A bucket that cannot be read: a StorageError (exit 7), never an interruption. */
function isBucketFailure(err: unknown): err is AppError {
  return isAppError(err) && err.exitCode === ExitCode.storage && err.code !== 'conflict';
}

/** Accept SourceBackends too (a fresh CatalogSource around them). */
function sourceOf(from: CatalogSource | SourceBackends): CatalogSource {
  return from instanceof CatalogSource ? from : new CatalogSource(from);
}

/** Nothing found: exit 10, or the bucket's exit code when the bucket could not be searched. */
function notFound(source: CatalogSource, message: string, hint: string): AppError {
  const b = source.bucketError;
  return new NotFoundError(b ? `${message} (the bucket could not be read)` : message, {
    hint: source.hint(hint),
    ...(b ? { exitCode: b.exitCode } : {}),
  });
}

/**
 * The backup called `name` (any of its file names works too). An unknown name fails with
 * NotFoundError listing the closest names that exist.
 */
export async function findByName(from: CatalogSource | SourceBackends, input: string): Promise<CatalogEntry> {
  const source = sourceOf(from);
  const name = normalizeName(input);
  const prefix = parseKey(`${name}.manifest.json`)?.prefix;
  if (prefix !== undefined) {
    const found = (await source.list(prefix)).find((e) => e.name === name);
    if (found) return found;
  }
  const all = await source.list();
  const typed = shownName(input);
  if (all.length === 0)
    throw notFound(
      source,
      `no backup named ${typed}: there are no backups in ${where(source.backends)}`,
      '`pgbak list` shows every backup',
    );
  const close = closestNames(
    name,
    all.map((e) => e.name),
  );
  throw notFound(
    source,
    `no backup named ${typed} in ${where(source.backends)}; closest: ${close.join(', ')}`,
    '`pgbak list` shows every backup',
  );
}

/** How far ahead of this host's clock a backup may be dated before it is taken for a skewed clock's. */
const FUTURE_TOLERANCE_MS = 5 * 60_000;

/** Is the entry dated more than FUTURE_TOLERANCE_MS after `now` (made while a clock was ahead)? */
export function isFromTheFuture(entry: CatalogEntry, now: Date): boolean {
  return entry.time.getTime() > now.getTime() + FUTURE_TOLERANCE_MS;
}

/** Why a backup dated ahead of this host's clock is not taken as the newest. */
export function futureWarning(entry: CatalogEntry, now: Date): string {
  const ahead = formatDuration(entry.time.getTime() - now.getTime());
  return `${entry.name} is dated ${entry.time.toISOString()}, ${ahead} ahead of this host's clock (made while the clock was ahead?): not taken as the newest backup`;
}

/** The host that made a backup, from its manifest or run record. */
function hostOf(entry: CatalogEntry): string | undefined {
  return entry.manifest?.host ?? entry.locations.local?.runData?.host ?? entry.locations.remote?.runData?.host;
}

/** The newest backup of each server among `entries`, for a message: "<id>: <name> (<time>, host <h>)". */
export function newestPerServer(entries: readonly CatalogEntry[]): string[] {
  return serversOf(entries).map((id) => {
    const e = entries.find((x) => x.systemIdentifier === id)!;
    const host = hostOf(e);
    return `server ${id}: newest ${e.name} (${e.time.toISOString()}${host ? `, host ${host}` : ''})`;
  });
}

/** The job's backups come from several servers and the job's own server is unknown: `latest` means nothing. */
export function ambiguousServers(identity: BackupIdentity, prefix: string, entries: readonly CatalogEntry[], location: string): AppError {
  const servers = serversOf(entries);
  return new AppError(
    'identity-ambiguous',
    `${location} holds backups of ${identity.database} from ${servers.length} different servers and this host cannot tell which is its own (the database server is not reachable and BACKUP_DIR has no last-run record naming it): ${newestPerServer(entries).join('; ')}`,
    {
      exitCode: ExitCode.usage,
      hint: `name the backup to use (\`pgbak list\` shows them), or give each server its own STORAGE_PREFIX (file prefix ${prefix})`,
    },
  );
}

export interface FindLatestOptions {
  /** The job's file prefix. */
  readonly prefix: string;
  /** Whose backups: the job's database and (when known) its server. */
  readonly identity: BackupIdentity;
  /** Which backups qualify (default: state good). */
  readonly accept?: ((entry: CatalogEntry) => boolean) | undefined;
  /** What a qualifying backup is called in messages (default "good backup"). */
  readonly what?: string | undefined;
  readonly now?: Date | undefined;
}

/** The newest qualifying backup, and why each newer one was passed over (one line each). */
export interface LatestChoice {
  readonly entry: CatalogEntry;
  readonly skipped: readonly string[];
}

/** Why an entry does not qualify, for a message: its state and problems. */
function whyNot(entry: CatalogEntry): string {
  return `${entry.state}${entry.problems.length ? `: ${entry.problems.join('; ')}` : ''}`;
}

/**
 * The newest backup of the job's database (and server, when known) that qualifies (state good
 * by default). Backups dated more than 5 minutes ahead of this host's clock never qualify. Each
 * newer backup that was passed over is named in `skipped` with its state and problems. Fails
 * when the job's server is unknown and its backups come from several servers, and when there
 * is none.
 */
export async function findLatest(from: CatalogSource | SourceBackends, options: FindLatestOptions): Promise<LatestChoice> {
  const source = sourceOf(from);
  const now = options.now ?? new Date();
  const accept = options.accept ?? ((e: CatalogEntry) => e.state === 'good');
  const what = options.what ?? 'good backup';
  const { identity } = options;
  const { ofDatabase, mine, ambiguousServers: servers } = ownBackups(await source.list(options.prefix), identity);
  if (servers.length > 0) throw ambiguousServers(identity, options.prefix, ofDatabase, where(source.backends));
  const passed: CatalogEntry[] = [];
  const why = (e: CatalogEntry, than: string) =>
    isFromTheFuture(e, now) ? futureWarning(e, now) : `skipped ${e.name}, newer than ${than}: it is ${whyNot(e)}`;
  for (const e of mine) {
    if (isFromTheFuture(e, now) || !accept(e)) passed.push(e);
    else return { entry: e, skipped: passed.map((p) => why(p, e.name)) };
  }
  const other = ofDatabase.length - mine.length;
  const notes = [
    ...(passed.length
      ? [
          `passed over: ${passed.map((p) => (isFromTheFuture(p, now) ? `${p.name} (dated ahead of this host's clock)` : `${p.name} (${whyNot(p)})`)).join('; ')}`,
        ]
      : []),
    ...(other ? [`${other} of other servers ignored`] : []),
  ];
  throw notFound(
    source,
    `no ${what} of ${identity.database} in ${where(source.backends)}${notes.length ? ` (${notes.join('; ')})` : ''}`,
    '`pgbak list` shows every backup and its state',
  );
}

/** The manifest of an entry, or an IntegrityError saying why there is none to trust. */
function requireManifest(entry: CatalogEntry): Manifest {
  if (entry.manifest) return entry.manifest;
  throw new IntegrityError(
    `backup ${entry.name} has no readable manifest (${entry.problems.join('; ') || entry.state}): its integrity cannot be checked`,
    {
      hint: 'restore another backup; to use this file anyway, run pg_restore on it by hand',
    },
  );
}

/**
 * The good copies of a backup, local first, each with its own manifest. A copy that is not good
 * (no manifest, artifact missing or of the wrong size, failed verification) is left out and
 * reported through `skipped`, with its problems.
 */
function artifactCopies(entry: CatalogEntry, backends: SourceBackends): { copies: SourceCopy[]; skipped: string[] } {
  const copies: SourceCopy[] = [];
  const skipped: string[] = [];
  for (const w of ['local', 'remote'] as const) {
    const backend = backends[w];
    const copy = entry.locations[w];
    if (!backend || !copy) continue;
    const m = copy.manifestData;
    const art = copy.artifact;
    if (copy.state === 'good' && m && art) {
      copies.push({ where: w, backend, key: art.key, size: art.size, manifest: m });
      continue;
    }
    const truncated =
      m && art && art.size < m.artifact.size ? ` (truncated: ${art.size} bytes, its manifest records ${m.artifact.size})` : '';
    skipped.push(
      `the ${w} copy ${backend.urlOf(art?.key ?? `${entry.name}.*`)} is ${copy.state}${truncated}: ${copy.problems.join('; ') || 'not usable'}`,
    );
  }
  return { copies, skipped };
}

/** Like artifactCopies, but fails when there is no good copy. */
export function requireCopies(entry: CatalogEntry, backends: SourceBackends): { copies: SourceCopy[]; skipped: string[] } {
  const found = artifactCopies(entry, backends);
  if (found.copies.length) return found;
  const copies = [entry.locations.local, entry.locations.remote];
  if (!copies.some((c) => c?.manifest)) requireManifest(entry);
  if (copies.some((c) => c?.manifest && c.artifact) || entry.state === 'corrupt') {
    throw new IntegrityError(`backup ${entry.name} is corrupt: ${found.skipped.join('; ') || 'no good copy'}`, {
      hint: 'the target was not touched; restore another backup (pgbak list)',
    });
  }
  throw new NotFoundError(
    `backup ${entry.name} has no complete copy in ${where(backends)}${found.skipped.length ? `: ${found.skipped.join('; ')}` : ''}`,
    {
      hint: backends.local && backends.remote ? 'restore another backup (pgbak list)' : 'try the other location (--from local|remote)',
    },
  );
}
