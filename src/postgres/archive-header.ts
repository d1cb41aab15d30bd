import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import { childEnv } from '../pipeline/child-env.js';
import type { PgTool } from './pg-tools.js';

const execFileAsync = promisify(execFile);

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

/**
 * A pass-through stage that also feeds the head of the stream to `pg_restore -l`, which reads a
 * custom-format archive's header and table of contents and exits. So a stream read once (a
 * bucket object, a decrypted `.gpg`) yields its header too. The tap never fails the stream: how
 * pg_restore ended is in `result`.
 */
export class ArchiveHeaderTap extends Transform {
  readonly result: Promise<HeaderRead>;
  private readonly child: ChildProcess;
  private feeding = true;
  private fed = 0;

  constructor(
    tool: PgTool,
    private readonly limit = 256 * 1024 * 1024,
  ) {
    super({ highWaterMark: 1024 * 1024 });
    this.child = spawn(tool.path, ['-l'], { stdio: ['pipe', 'pipe', 'pipe'], env: childEnv() });
    const child = this.child;
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stdout!.on('data', (s: string) => (out += s));
    child.stderr!.on('data', (s: string) => (err = (err + s).slice(-8192)));
    child.stdin!.on('error', () => (this.feeding = false));
    this.result = new Promise((resolve) => {
      child.on('error', (e) => {
        this.feeding = false;
        resolve({ ok: false, error: `cannot run ${tool.path}: ${e.message}` });
      });
      child.on('close', (code, signal) => {
        this.feeding = false;
        if (code === 0) resolve({ ok: true, header: parseArchiveHeader(out) });
        else if (this.fed > this.limit) resolve({ ok: false, error: `no table of contents in the first ${this.limit} bytes` });
        else resolve({ ok: false, error: signal ? `pg_restore was killed by ${signal}` : tail(err) });
      });
    });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.push(chunk);
    if (!this.feeding) return callback();
    this.fed += chunk.length;
    const stdin = this.child.stdin!;
    if (this.fed > this.limit) {
      this.feeding = false;
      this.child.kill('SIGTERM');
      return callback();
    }
    if (stdin.write(chunk)) return callback();
    const done = () => {
      stdin.off('drain', done);
      this.child.off('close', done);
      callback();
    };
    stdin.once('drain', done);
    this.child.once('close', done);
  }

  override _flush(callback: TransformCallback): void {
    if (this.feeding) this.child.stdin!.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // After a normal end the reader has its EOF and exits by itself; on failure, stop it.
    if (err && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    callback(err);
  }
}
