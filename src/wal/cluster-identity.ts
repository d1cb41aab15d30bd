import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { AppError, ExitCode } from '../errors/index.js';

/** The cluster a WAL file belongs to and the segment size it was written with. */
export interface ClusterIdentity {
  /** pg_control's system identifier, as a decimal string (a uint64). */
  readonly systemIdentifier: string;
  /** Bytes; undefined when read from pg_control (history and backup files carry none). */
  readonly segmentSize: number | undefined;
}

/**
 * The first page of every segment starts with a long page header: xlp_magic (2 bytes), xlp_info (2),
 * xlp_tli (4), xlp_pageaddr (8), xlp_rem_len (4), padding to 24, then xlp_sysid (8),
 * xlp_seg_size (4) and xlp_xlog_blcksz (4), little-endian on the machines pgbak supports.
 */
const XLP_LONG_HEADER = 0x0002;

/** Read the system identifier from a segment's first page. */
export async function identityOfSegment(path: string): Promise<ClusterIdentity> {
  const head = await readHead(path, 40);
  const info = head.readUInt16LE(2);
  if (head.length < 40 || (info & XLP_LONG_HEADER) === 0) {
    throw new AppError('wal-unreadable', `${path} does not start with a WAL long page header`, {
      exitCode: ExitCode.integrity,
      hint: 'is it a WAL segment of this PostgreSQL? archive_command must pass %p',
    });
  }
  return { systemIdentifier: head.readBigUInt64LE(24).toString(), segmentSize: head.readUInt32LE(32) };
}

/** Read the system identifier from `<pgdata>/global/pg_control` (its first field). */
export async function identityOfDataDirectory(pgdata: string): Promise<ClusterIdentity> {
  const file = join(pgdata, 'global', 'pg_control');
  let head: Buffer;
  try {
    head = await readHead(file, 8);
  } catch (err) {
    throw new AppError('pgdata-unreadable', `cannot read ${file}: ${(err as Error).message}`, {
      exitCode: ExitCode.permission,
      hint: 'run pgbak as the PostgreSQL server user, from the data directory (archive_command does), or pass --pgdata',
      cause: err,
    });
  }
  if (head.length < 8) throw new AppError('pgdata-unreadable', `${file} is too short`, { exitCode: ExitCode.integrity });
  return { systemIdentifier: head.readBigUInt64LE(0).toString(), segmentSize: undefined };
}

async function readHead(path: string, bytes: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    const { bytesRead } = await fh.read(buf, 0, bytes, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
