import type { CompressionMethod } from '../config/parsers.js';

/**
 * Backup names, as in the seed's "Backup Files" table: `<db>_YYYYMMDD_HHMMSS` (UTC), then
 * `.dump` (plus `.zst` / `.lz4` when compressed in the stream, plus `.gpg` or `.age` when
 * encrypted), `.globals.sql[.gpg|.age]`, `.manifest.json` (written last) and `.verify.json`; `.run.json` is the run
 * record a backup writes FIRST (with a create-only put): it claims the name, so two writers never
 * share keys, and it proves that a manifest-less dump is pgbak's own failed run and not a foreign file.
 */
/** How an artifact is encrypted. */
export type EncryptionMethod = 'gpg' | 'age';

export type FileRole = 'artifact' | 'globals' | 'manifest' | 'verification' | 'run';

export interface ParsedKey {
  /** `<prefix>_YYYYMMDD_HHMMSS` */
  readonly base: string;
  /** The database part of the name (file-safe form). */
  readonly prefix: string;
  /** The UTC time encoded in the name. */
  readonly time: Date;
  readonly role: FileRole;
  readonly encrypted: boolean;
  /** How, when encrypted: `.gpg` or `.age`. */
  readonly encryption: EncryptionMethod | undefined;
  /** Stream compression added by pgbak (`.zst`, `.lz4`), for artifacts. */
  readonly streamCompression: 'zstd' | 'lz4' | undefined;
}

const KEY_RE =
  /^(.+)_(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})\.(dump(?:\.zst|\.lz4)?(?:\.gpg|\.age)?|globals\.sql(?:\.gpg|\.age)?|manifest\.json|verify\.json|run\.json)$/;

/** Parse a storage key's last path segment; undefined for anything that is not pgbak's. */
export function parseKey(key: string): ParsedKey | undefined {
  const file = key.slice(key.lastIndexOf('/') + 1);
  const m = KEY_RE.exec(file);
  if (!m) return undefined;
  const [, prefix, y, mo, d, h, mi, s, ext] = m as unknown as [string, string, string, string, string, string, string, string, string];
  const time = new Date(Date.UTC(+y, +mo - 1, +d, +h, +mi, +s));
  if (Number.isNaN(time.getTime()) || time.getUTCDate() !== +d || time.getUTCMonth() !== +mo - 1) return undefined;
  const role: FileRole = ext.startsWith('dump')
    ? 'artifact'
    : ext.startsWith('globals')
      ? 'globals'
      : ext === 'manifest.json'
        ? 'manifest'
        : ext === 'run.json'
          ? 'run'
          : 'verification';
  return {
    base: `${prefix}_${y}${mo}${d}_${h}${mi}${s}`,
    prefix,
    time,
    role,
    encrypted: ext.endsWith('.gpg') || ext.endsWith('.age'),
    encryption: ext.endsWith('.gpg') ? 'gpg' : ext.endsWith('.age') ? 'age' : undefined,
    streamCompression: ext.includes('.zst') ? 'zstd' : ext.includes('.lz4') ? 'lz4' : undefined,
  };
}

/** `YYYYMMDD_HHMMSS` in UTC. */
export function timestampOf(date: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(date.getUTCFullYear(), 4)}${p(date.getUTCMonth() + 1)}${p(date.getUTCDate())}_${p(date.getUTCHours())}${p(date.getUTCMinutes())}${p(date.getUTCSeconds())}`;
}

export function baseName(prefix: string, date: Date): string {
  return `${prefix}_${timestampOf(date)}`;
}

/** `encrypted`: true (gpg, as before age existed), false, or the method. */
export function artifactKey(
  base: string,
  opts: { streamCompression?: CompressionMethod | undefined; encrypted: boolean | EncryptionMethod },
): string {
  const comp = opts.streamCompression === 'zstd' ? '.zst' : opts.streamCompression === 'lz4' ? '.lz4' : '';
  return `${base}.dump${comp}${encryptionSuffix(opts.encrypted)}`;
}

export const globalsKey = (base: string, encrypted: boolean | EncryptionMethod) => `${base}.globals.sql${encryptionSuffix(encrypted)}`;

function encryptionSuffix(encrypted: boolean | EncryptionMethod): string {
  return encrypted === 'age' ? '.age' : encrypted ? '.gpg' : '';
}
export const manifestKey = (base: string) => `${base}.manifest.json`;
export const verificationKey = (base: string) => `${base}.verify.json`;
export const runKey = (base: string) => `${base}.run.json`;

/**
 * BACKUP_JOBS ≥ 2: each file of pg_dump's directory-format output is stored as
 * `<base>.dir/<file>` (`toc.dat`, `3456.dat.gz`, plus `.zst`/`.lz4` and `.gpg`/`.age` as for a
 * dump). Only these keys one level deep are pgbak's; the catalog counts them as the backup's artifact files.
 */
export const directoryKey = (base: string, file: string) => `${base}.dir/${file}`;

const DIR_KEY_RE = /^([^/]+)\.dir\/([^/]+)$/;

/** A key `<base>.dir/<file>` as an artifact file of `<base>`; undefined for anything else. */
export function parseDirectoryKey(key: string): (ParsedKey & { readonly file: string }) | undefined {
  const m = DIR_KEY_RE.exec(key);
  if (!m) return undefined;
  const parsed = parseKey(`${m[1]!}.dump`);
  if (!parsed || m[2]!.startsWith('.')) return undefined;
  const file = m[2]!;
  const encryption = file.endsWith('.gpg') ? 'gpg' : file.endsWith('.age') ? 'age' : undefined;
  return { ...parsed, encrypted: encryption !== undefined, encryption, file };
}
