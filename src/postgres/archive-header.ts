import { childEnv } from '../pipeline/child-env.js';
import type { PgTool } from './pg-tools.js';
import { PgRestoreListTap } from './toc.js';
import { execChild } from '../pipeline/child-stage.js';

/** Tool runs in their own process group, killed on pgbak's exit (see child-stage.ts). */
const execFileAsync = execChild;

/**
 * The summary `pg_restore -l` prints before an archive's table of contents:
 * ```
 * ; Archive created at 2026-12-01 21:24:33 UTC
 * ;     dbname: shop
 * ;     Compression: 9            (pg_dump ≤ 15: the gzip level; 16+: gzip | lz4 | zstd | none)
 * ;     Format: CUSTOM
 * ;     Dumped from database version: 15.18 (Debian 15.18-0+deb12u1)
 * ;     Dumped by pg_dump version: 15.18 (Debian 15.18-0+deb12u1)
 * ```
 */
export interface ArchiveHeader {
  readonly dbname: string | undefined;
  /** `CUSTOM`, `TAR`, `DIRECTORY` … as printed. */
  readonly format: string | undefined;
  /** The `Compression:` value as printed (`9`, `-1`, `0`, `gzip`, `zstd` …). */
  readonly compression: string | undefined;
  readonly createdAt: string | undefined;
  readonly serverVersion: string | undefined;
  readonly pgDumpVersion: string | undefined;
  /** Entries of the table of contents. */
  readonly tocEntries: number | undefined;
}

/** Parse the `;`-comment summary of `pg_restore -l` output. */
export function parseArchiveHeader(text: string): ArchiveHeader {
  const field = (name: string): string | undefined => {
    const m = new RegExp(`^;\\s+${name}:[ \\t]?(.*)$`, 'm').exec(text);
    return m ? m[1]!.trimEnd() : undefined;
  };
  const entries = field('TOC Entries');
  return {
    dbname: field('dbname'),
    format: field('Format'),
    compression: field('Compression'),
    createdAt: /^; Archive created at (.+)$/m.exec(text)?.[1]?.trim(),
    serverVersion: field('Dumped from database version'),
    pgDumpVersion: field('Dumped by pg_dump version'),
    tocEntries: entries === undefined ? undefined : Number(entries),
  };
}

/** How `pg_restore -l` ended: its output on success, else its error text. */
export type HeaderRead = { readonly ok: true; readonly header: ArchiveHeader } | { readonly ok: false; readonly error: string };

/** The last lines of a failed pg_restore's stderr, for a message. */
function tail(stderr: string): string {
  return stderr.trim().split('\n').slice(-2).join(' | ') || 'no output';
}

/** `pg_restore -l <file>`: the header of an archive on disk (seekable, read only as far as needed). */
export async function readArchiveHeader(tool: PgTool, file: string): Promise<HeaderRead> {
  try {
    const { stdout } = await execFileAsync(tool.path, ['-l', file], { maxBuffer: 256 * 1024 * 1024, env: childEnv() });
    return { ok: true, header: parseArchiveHeader(stdout) };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: unknown };
    return { ok: false, error: e.code === 'ENOENT' ? `${tool.path} not found` : tail(String(e.stderr ?? e.message)) };
  }
}

/** The tap of a stream read once (a bucket object, a decrypted `.gpg`): its header too. */
export class ArchiveHeaderTap extends PgRestoreListTap {
  readonly result: Promise<HeaderRead> = this.output.then((r) => (r.ok ? { ok: true, header: parseArchiveHeader(r.text) } : r));
}
