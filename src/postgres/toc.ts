import { spawn, type ChildProcess } from 'node:child_process';
import { Transform, type TransformCallback } from 'node:stream';
import { ProcessError } from '../errors/index.js';
import { childEnv } from '../pipeline/child-env.js';
import type { PgTool } from './pg-tools.js';
import { CHILD_SPAWN_OPTIONS, execChild, killChild, trackChild } from '../pipeline/child-stage.js';

/** Tool runs in their own process group, killed on pgbak's exit (see child-stage.ts). */
const execFileAsync = execChild;

/** What `pg_restore -l` says about an archive. */
export interface Toc {
  /** Entries in the table of contents (what a restore processes, one "object" each). */
  readonly entries: number;
  /**
   * Tables, as `pg_restore -l` prints them: `<schema> <name>` separated by one space. Names may
   * contain spaces, so compare with `format('%s %s', nspname, relname)` rather than splitting.
   */
  readonly tables: readonly string[];
}

/**
 * Parse `pg_restore -l` output. A line is `<id>; <catalog oid> <oid> <desc> <schema> <tag>
 * <owner>`; a table's catalog is pg_class (1259), its data's is 0, which tells `TABLE` from
 * `TABLE DATA` even for a schema called "DATA".
 */
export function parseToc(text: string): Toc {
  let entries = 0;
  const tables: string[] = [];
  for (const line of text.split('\n')) {
    if (!/^\d+; /.test(line)) continue;
    entries++;
    const m = /^\d+; 1259 \d+ TABLE (.+) (\S*)$/.exec(line);
    if (m) tables.push(m[1]!);
  }
  return { entries, tables };
}

/** `pg_restore -l <file>` (a seekable plain archive). */
export async function listToc(tool: PgTool, file: string): Promise<Toc> {
  try {
    const { stdout } = await execFileAsync(tool.path, ['-l', file], { maxBuffer: 256 * 1024 * 1024, env: childEnv() });
    return parseToc(stdout);
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? (err as Error).message).trim();
    throw new ProcessError(`pg_restore cannot read the archive's table of contents: ${stderr.split('\n').slice(-2).join(' | ')}`, {
      cause: err,
    });
  }
}

/** How `pg_restore -l` on the head of a stream ended: its output, or why there is none. */
export type ListRead = { readonly ok: true; readonly text: string } | { readonly ok: false; readonly error: string };

/**
 * A pass-through stage that also feeds the head of the stream to `pg_restore -l`, which reads
 * the header and table of contents at the start of a custom-format archive and exits. So a
 * stream read once (a restore from the bucket, a decrypted `.gpg`) also yields its listing
 * without a second read. The tap never fails the stream: how pg_restore ended is in `output`.
 */
export class PgRestoreListTap extends Transform {
  /** pg_restore -l's output once it has read the archive's head. */
  readonly output: Promise<ListRead>;
  private readonly child: ChildProcess;
  private feeding = true;
  private fed = 0;

  constructor(
    tool: PgTool,
    private readonly limit = 256 * 1024 * 1024,
  ) {
    super({ highWaterMark: 1024 * 1024 });
    this.child = trackChild(spawn(tool.path, ['-l'], { stdio: ['pipe', 'pipe', 'pipe'], env: childEnv(), ...CHILD_SPAWN_OPTIONS }));
    const child = this.child;
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stdout!.on('data', (s: string) => (out += s));
    child.stderr!.on('data', (s: string) => (err = (err + s).slice(-8192)));
    child.stdin!.on('error', () => (this.feeding = false));
    this.output = new Promise((resolve) => {
      child.on('error', (e) => {
        this.feeding = false;
        resolve({ ok: false, error: `cannot run ${tool.path}: ${e.message}` });
      });
      child.on('close', (code, signal) => {
        this.feeding = false;
        if (code === 0) resolve({ ok: true, text: out });
        else if (this.fed > this.limit) resolve({ ok: false, error: `no table of contents in the first ${this.limit} bytes` });
        else
          resolve({
            ok: false,
            error: signal ? `pg_restore was killed by ${signal}` : err.trim().split('\n').slice(-2).join(' | ') || 'no output',
          });
      });
    });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.push(chunk);
    if (!this.feeding) return callback();
    this.fed += chunk.length;
    const stdin = this.child.stdin!;
    if (this.fed > this.limit) {
      // Not a custom archive's head after all this: stop the side reader.
      this.feeding = false;
      killChild(this.child, 'SIGTERM');
      return callback();
    }
    if (stdin.write(chunk)) return callback();
    // Wait for the side reader to take it, or to exit (it stops reading after the TOC).
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
    // After a normal end the side reader has its EOF and exits by itself; on failure, stop it.
    if (err && this.child.exitCode === null && this.child.signalCode === null) killChild(this.child, 'SIGTERM');
    callback(err);
  }
}

/** The tap a streaming restore uses: its object count, or undefined when pg_restore -l failed. */
export class TocTap extends PgRestoreListTap {
  readonly toc: Promise<Toc | undefined> = this.output.then((r) => (r.ok ? parseToc(r.text) : undefined));
}
