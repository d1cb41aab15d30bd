/**
 * The names PostgreSQL gives the files it archives, and the arithmetic between them and LSNs.
 * A segment is `TTTTTTTTXXXXXXXXYYYYYYYY` (timeline, then the segment number split in two);
 * beside segments PostgreSQL archives `TTTTTTTT.history` (a timeline's parents),
 * `<segment>.<offset>.backup` (a base backup's label and stop point) and `<segment>.partial`
 * (the last, incomplete segment of a timeline left at a promotion).
 */

export type WalFileKind = 'segment' | 'history' | 'backup' | 'partial';

export interface WalFileName {
  readonly name: string;
  readonly kind: WalFileKind;
  readonly timeline: number;
  /** The segment's 24 hex digits (segment, backup, partial); undefined for a history file. */
  readonly segment: string | undefined;
}

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{16})$/;
const HISTORY = /^([0-9A-F]{8})\.history$/;
const BACKUP = /^([0-9A-F]{8})([0-9A-F]{16})\.[0-9A-F]{8}\.backup$/;
const PARTIAL = /^([0-9A-F]{8})([0-9A-F]{16})\.partial$/;

/** Parse a name PostgreSQL archives; undefined for anything else. */
export function parseWalFileName(name: string): WalFileName | undefined {
  let m = SEGMENT.exec(name);
  if (m) return { name, kind: 'segment', timeline: parseInt(m[1]!, 16), segment: name };
  m = HISTORY.exec(name);
  if (m) return { name, kind: 'history', timeline: parseInt(m[1]!, 16), segment: undefined };
  m = BACKUP.exec(name);
  if (m) return { name, kind: 'backup', timeline: parseInt(m[1]!, 16), segment: m[1]! + m[2]! };
  m = PARTIAL.exec(name);
  if (m) return { name, kind: 'partial', timeline: parseInt(m[1]!, 16), segment: m[1]! + m[2]! };
  return undefined;
}

/** Default WAL segment size (initdb --wal-segsize can change it; the archive records the real one). */
export const DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024;

/** An LSN `X/Y` as a bigint. */
export function parseLsn(lsn: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn.trim());
  if (!m) throw new Error(`not an LSN: ${lsn}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

const hex8 = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0');

/** The segment number of a segment name. */
export function segmentNumber(segment: string, segmentSize = DEFAULT_SEGMENT_SIZE): bigint {
  const perId = 0x100000000n / BigInt(segmentSize);
  return BigInt(`0x${segment.slice(8, 16)}`) * perId + BigInt(`0x${segment.slice(16, 24)}`);
}

/** The name of segment number `segno` on `timeline`. */
export function segmentName(timeline: number, segno: bigint, segmentSize = DEFAULT_SEGMENT_SIZE): string {
  const perId = 0x100000000n / BigInt(segmentSize);
  return hex8(timeline) + hex8(segno / perId) + hex8(segno % perId);
}

/** The segment that holds `lsn` on `timeline`. */
export function segmentOfLsn(timeline: number, lsn: bigint, segmentSize = DEFAULT_SEGMENT_SIZE): string {
  return segmentName(timeline, lsn / BigInt(segmentSize), segmentSize);
}

/**
 * The segments a base backup needs, from its start LSN to its stop LSN (the stop LSN is the end
 * of the last record: a stop exactly on a segment boundary needs the segment before it only).
 */
export function segmentsBetween(timeline: number, start: bigint, stop: bigint, segmentSize = DEFAULT_SEGMENT_SIZE): string[] {
  const size = BigInt(segmentSize);
  const first = start / size;
  const last = stop > start ? (stop - 1n) / size : first;
  const out: string[] = [];
  for (let s = first; s <= last; s++) out.push(segmentName(timeline, s, segmentSize));
  return out;
}

/** The name of the backup history file PostgreSQL archives for a backup that started at `start`. */
export function backupHistoryName(timeline: number, start: bigint, segmentSize = DEFAULT_SEGMENT_SIZE): string {
  return `${segmentOfLsn(timeline, start, segmentSize)}.${hex8(start % BigInt(segmentSize))}.backup`;
}

/** `0000000N.history`. */
export function historyName(timeline: number): string {
  return `${hex8(timeline)}.history`;
}

/** One line of a timeline history file: `parentTLI  switchpoint  reason`. */
export interface TimelineSwitch {
  readonly timeline: number;
  readonly switchpoint: bigint;
}

/** The parents of a timeline, oldest first, from its `.history` file's text. */
export function parseHistory(text: string): TimelineSwitch[] {
  const out: TimelineSwitch[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+([0-9A-Fa-f]+\/[0-9A-Fa-f]+)/.exec(line);
    if (m) out.push({ timeline: Number(m[1]), switchpoint: parseLsn(m[2]!) });
  }
  return out;
}
