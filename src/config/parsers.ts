/** Small pure parsers for configuration values; each throws an Error whose message says what is expected. */

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * `90s`, `10m`, `6h`, `1d`, `1h30m`. Returns milliseconds. A bare number other than 0 is refused:
 * `BACKUP_RPO=6` means 6 hours to whoever wrote it, and six seconds would turn status red for good.
 */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) {
    if (Number(t) === 0) return 0;
    throw new Error(`add a unit, e.g. ${t}h, ${t}m or ${t}s (a bare number is ambiguous; units: ms, s, m, h, d, w)`);
  }
  const re = /(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d|w)/gy;
  let total = 0;
  let consumed = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(t)) !== null) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    consumed = re.lastIndex;
  }
  if (consumed === 0 || consumed !== t.length) {
    throw new Error(`must be a duration such as 90s, 10m, 6h or 1d (got "${text}")`);
  }
  return Math.round(total);
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1000,
  kb: 1000,
  kib: 1024,
  m: 1000 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1000 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1000 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};

/** `8MiB`, `64MB`, `1GiB`, `5000000`. Returns bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`must be a size such as 16MiB or 1GB (got "${text}")`);
  return Math.round(Number(m[1]) * unit);
}

/** `50%` or `50` → 0.5. */
export function parsePercent(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*%?\s*$/.exec(text);
  if (!m) throw new Error(`must be a percentage such as 50% (got "${text}")`);
  return Number(m[1]) / 100;
}

/** A compressor pgbak can run. */
export type CompressionMethod = 'gzip' | 'zstd' | 'lz4' | 'none';
/** A compressor and its level (BACKUP_COMPRESSION). */
export interface Compression {
  readonly method: CompressionMethod;
  readonly level: number;
}

const COMPRESSION_LEVELS: Record<Exclude<CompressionMethod, 'none'>, readonly [number, number]> = {
  gzip: [0, 9],
  zstd: [1, 22],
  lz4: [1, 12],
};

/** `gzip:9`, `zstd:3`, `lz4:1`, `none`; a method without a level gets its usual default. */
export function parseCompression(text: string): Compression {
  const t = text.trim().toLowerCase();
  if (t === 'none') return { method: 'none', level: 0 };
  const m = /^(gzip|zstd|lz4)(?::(\d+))?$/.exec(t);
  if (!m) throw new Error(`must be gzip:0-9, zstd:1-22, lz4:1-12 or none (got "${text}")`);
  const method = m[1] as Exclude<CompressionMethod, 'none'>;
  const [lo, hi] = COMPRESSION_LEVELS[method];
  const level = m[2] === undefined ? { gzip: 6, zstd: 3, lz4: 1 }[method] : Number(m[2]);
  if (level < lo || level > hi) throw new Error(`${method} level must be ${lo}-${hi} (got ${level})`);
  return { method, level };
}

/** `gzip:9`, `none`: the text {@link parseCompression} reads. */
export function formatCompression(c: Compression): string {
  return c.method === 'none' ? 'none' : `${c.method}:${c.level}`;
}
