import { execFile, spawn, type ChildProcess, type ExecFileOptions } from 'node:child_process';
import { Duplex } from 'node:stream';
import { promisify } from 'node:util';
import { redact } from '../logging/redact.js';
import { ProcessError, type AppError, PgToolError } from '../errors/index.js';
import { childEnv } from './child-env.js';

export interface ChildStageOptions {
  /** Name shown in errors: "pg_dump", "gpg", "zstd". */
  readonly label: string;
  readonly command: string;
  readonly args: readonly string[];
  /** The child's own variables (PGPASSWORD …), over the allow-listed part of process.env (see child-env.ts). */
  readonly env?: Record<string, string | undefined>;
  /** Whether the stage reads input (a transform) or only produces output (a source). */
  readonly input: boolean;
  /** Each line the child writes to stderr (for progress); stderr is also kept for errors. */
  readonly onStderrLine?: (line: string) => void;
  /** Keep only stderr lines that match (default: all), so chatty verbose output stays out of errors. */
  readonly keepStderr?: (line: string) => boolean;
  /** Turn a failed exit into a domain error (default: ProcessError with the stderr tail). */
  readonly mapFailure?: (info: ChildFailure) => AppError;
}

export interface ChildFailure {
  readonly label: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
}

const STDERR_KEEP = 16 * 1024;

/**
 * Every child pgbak starts runs in its own process group (`detached`: a new session on POSIX),
 * so a Ctrl-C at the terminal (SIGINT to the whole foreground group) reaches pgbak only: pgbak
 * decides what a signal means (the daemon finishes the running backup) and stops its children
 * itself, through {@link killChild}. A child that is still running when pgbak exits (a second
 * signal, a stop timeout, process.exit on an error) has its group killed by an exit hook, so
 * no pg_dump or gpg outlives pgbak.
 */
export const CHILD_SPAWN_OPTIONS = { detached: true } as const;

/** Children started with {@link CHILD_SPAWN_OPTIONS} that have not exited yet. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Remember `child` until it exits, so pgbak's exit kills its group if it still runs. */
export function trackChild(child: ChildProcess): ChildProcess {
  if (child.pid === undefined) return child; // it did not start: its 'error' event follows
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', killLiveChildren);
  }
  return child;
}

/** Stop a child and anything it started: its process group, else (not a group leader) the child itself. */
export function killChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  if (child.pid !== undefined) {
    try {
      process.kill(-child.pid, signal);
      return;
    } catch {
      /* no such group (not detached, or already gone): fall back to the child */
    }
  }
  child.kill(signal);
}

function killLiveChildren(): void {
  for (const child of liveChildren) killChild(child, 'SIGTERM');
}

const execFileAsync = promisify(execFile);

/**
 * `execFile` (promisified, utf8) for short tool runs (`--version`, `pg_restore -l FILE`, gpg
 * key listings), killed on pgbak's exit like every child. Not in a process group of their own:
 * Node 20's execFile does not pass `detached` on (`ps -o pgid` shows pgbak's group), so a
 * terminal's Ctrl-C reaches them directly, and a stop signal does not end them (they are short).
 */
export function execChild(
  file: string,
  args: readonly string[],
  options: ExecFileOptions = {},
): Promise<{ stdout: string; stderr: string }> {
  const run = execFileAsync(file, [...args], { ...options, ...CHILD_SPAWN_OPTIONS, encoding: 'utf8' });
  trackChild(run.child);
  return run;
}

/** The default failure of a child: a ProcessError with how it ended and the tail of its stderr. */
export function defaultFailure(info: ChildFailure): AppError {
  const how = info.signal ? `was killed by ${info.signal}` : `exited with code ${info.code}`;
  const tail = info.stderr.trim().split('\n').slice(-3).join(' | ');
  return new ProcessError(`${info.label} ${how}${tail ? `: ${tail}` : ''}`, { hint: signalHint(info) });
}

/**
 * pgbak stops its children with SIGTERM (an abort) and never sends SIGKILL, so a SIGKILL came
 * from outside: most often the kernel's OOM killer, else an operator or a supervisor's timeout.
 */
function signalHint(info: ChildFailure): string | undefined {
  if (info.signal === 'SIGKILL') {
    return `${info.label} was killed from outside pgbak — often the kernel's OOM killer: check \`dmesg\` or \`journalctl -k\` for "Out of memory"; earlier backups are untouched`;
  }
  if (info.signal === 'SIGSEGV' || info.signal === 'SIGBUS' || info.signal === 'SIGABRT') {
    return `${info.label} crashed (${info.signal}); check the system log and the ${info.label} version; earlier backups are untouched`;
  }
  return undefined;
}

/**
 * A child's output goes on in chunks of at least this many bytes, or once a smaller one waited
 * {@link COALESCE_MS}. Node reads a pipe 64 KiB at a time (gpg's output even 8 KiB), and every
 * chunk costs the same work whatever its size: the stream stages, the SHA-256, the local file's
 * write, the upload's bookkeeping. Joined into 256 KiB, node's CPU in a backup with gpg + upload
 * fell by ~0.2 s on 800 MB against 64 KiB chunks (0.45 s against gpg's 8 KiB), for 1-3 MB of peak
 * RSS; 1 MiB saved no more and cost 20 MB (docs/performance.md).
 */
export const COALESCE_BYTES = 256 * 1024;
export const COALESCE_MS = 20;

/**
 * A child process as a stream stage. Its output ends ONLY after the child exited with code 0:
 * a killed pg_dump closes its stdout cleanly, and a stage that trusted end-of-file would pass a
 * truncated dump on as complete. A non-zero exit or a signal destroys the stream with an error
 * naming the process and the tail of its stderr. Destroying the stage kills the child.
 *
 * The child starts in `_construct` (the next tick), so {@link ChildStage.connect} can first join
 * stages that follow each other: the second child then reads the first one's stdout through a
 * kernel pipe, and those bytes never pass through node (pg_dump → zstd → gpg costs node nothing
 * but the final output). A joined stage's output still ends only once every child before it
 * exited 0, so a killed pg_dump can never make zstd's clean end-of-file look like a whole dump.
 */
export class ChildStage extends Duplex {
  private proc: ChildProcess | undefined;
  private stderrText = '';
  private stdoutEnded = false;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly options: ChildStageOptions;
  /** The stage whose child's stdout this child reads directly. */
  private upstream: ChildStage | undefined;
  /** The stage whose child reads this child's stdout directly (this stage then outputs nothing). */
  private downstream: ChildStage | undefined;
  /** A file descriptor the child writes its stdout to (this stage then outputs nothing). */
  private outputFd: number | undefined;
  /** Output read but not passed on yet (see {@link COALESCE_BYTES}), and the timer that passes it on. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private pendingTimer: NodeJS.Timeout | undefined;

  constructor(options: ChildStageOptions) {
    super({ allowHalfOpen: true, readableHighWaterMark: 256 * 1024, writableHighWaterMark: 64 * 1024 });
    this.options = options;
    if (!options.input) this.end();
  }

  /**
   * Join consecutive child stages of a pipeline by kernel pipes (see the class comment). Only
   * stages created in the same tick and not joined yet are joined; any other stream, or a stage
   * that already started, keeps being fed through node as before.
   */
  static connect(streams: readonly unknown[]): void {
    for (let i = 1; i < streams.length; i++) {
      const a = streams[i - 1];
      const b = streams[i];
      if (!(a instanceof ChildStage) || !(b instanceof ChildStage)) continue;
      if (a.proc || b.proc || a.downstream || a.outputFd !== undefined || b.upstream || !b.options.input || a.destroyed || b.destroyed)
        continue;
      a.downstream = b;
      b.upstream = a;
    }
  }

  /**
   * Let the child write its stdout straight into an open file (`fd`, a descriptor node keeps
   * open until the stage ended): those bytes never pass through node. The stage then outputs
   * nothing and ends, as always, only once its child and every child joined before it exited 0.
   * Only before the stage started, and not on a stage whose output another child reads.
   */
  writeTo(fd: number): this {
    if (this.proc || this.downstream) throw new Error(`${this.options.label}: writeTo after the stage started or was joined`);
    this.outputFd = fd;
    return this;
  }

  /** The running child process (after the stage started). */
  get child(): ChildProcess {
    if (!this.proc) throw new Error(`${this.options.label}: not started yet`);
    return this.proc;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    try {
      this.start();
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  /** Start this stage's whole joined chain at once, so no tick passes between handing a pipe over and closing node's copy. */
  private start(): ChildProcess {
    if (!this.proc) {
      let first: ChildStage = this;
      while (first.upstream) first = first.upstream;
      for (let s: ChildStage | undefined = first; s; s = s.downstream) s.spawnChild();
    }
    return this.proc!;
  }

  private spawnChild(): void {
    if (this.proc) return;
    const { options } = this;
    // Read straight from the previous child's stdout.
    const input = this.upstream?.proc?.stdout ?? undefined;
    const child = spawn(options.command, [...options.args], {
      env: childEnv(options.env),
      stdio: [input ?? (options.input ? 'pipe' : 'ignore'), this.outputFd ?? 'pipe', 'pipe'],
      ...CHILD_SPAWN_OPTIONS,
    });
    trackChild(child);
    this.proc = child;
    // The child holds its own copy of the pipe now; node's copy is closed before it reads a byte.
    input?.destroy();
    child.on('error', (err: NodeJS.ErrnoException) => {
      const e =
        err.code === 'ENOENT'
          ? options.label.startsWith('pg_')
            ? new PgToolError(`${options.label} not found at ${options.command}`)
            : new ProcessError(`${options.label} not found (${options.command})`, { hint: `install ${options.label}`, cause: err })
          : new ProcessError(`${options.label} could not start: ${err.message}`, { cause: err });
      this.destroy(e);
    });
    if (this.downstream || this.outputFd !== undefined) {
      this.stdoutEnded = true; // read by the next child or written to a file, not by node
    } else {
      child.stdout!.on('data', (chunk: Buffer) => {
        this.pending.push(chunk);
        this.pendingBytes += chunk.length;
        if (this.pendingBytes >= COALESCE_BYTES) this.passOn();
        else this.pendingTimer ??= setTimeout(() => this.passOn(), COALESCE_MS);
      });
      child.stdout!.on('end', () => {
        this.passOn();
        this.stdoutEnded = true;
        this.maybeFinish();
      });
    }
    let partial = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) this.stderrLine(line);
    });
    child.stderr!.on('end', () => {
      if (partial) this.stderrLine(partial);
    });
    child.stdin?.on('error', () => {
      /* EPIPE when the child died: its exit status is the error worth reporting */
    });
    child.on('close', (code, signal) => {
      this.exit = { code, signal };
      // Every stage of a joined chain may be waiting for this exit.
      let first: ChildStage = this;
      while (first.upstream) first = first.upstream;
      for (let s: ChildStage | undefined = first; s; s = s.downstream) s.maybeFinish();
    });
  }

  /** Pass the output read so far on, as one chunk (see {@link COALESCE_BYTES}). */
  private passOn(): void {
    clearTimeout(this.pendingTimer);
    this.pendingTimer = undefined;
    if (this.pendingBytes === 0 || this.destroyed) return;
    const chunk = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    if (!this.push(chunk)) this.proc?.stdout?.pause();
  }

  private stderrLine(line: string): void {
    this.options.onStderrLine?.(line);
    if (this.options.keepStderr && !this.options.keepStderr(line)) return;
    this.stderrText = (this.stderrText + redact(line) + '\n').slice(-STDERR_KEEP);
  }

  /** The kept stderr text (redacted). */
  get stderr(): string {
    return this.stderrText;
  }

  private get exitedOk(): boolean {
    return this.exit !== undefined && this.exit.code === 0 && !this.exit.signal;
  }

  private maybeFinish(): void {
    if (!this.stdoutEnded || !this.exit || this.destroyed) return;
    if (this.exitedOk) {
      // A joined stage ends only once every child before it exited 0; a failed one destroys
      // the pipeline itself.
      for (let s = this.upstream; s; s = s.upstream) if (!s.exitedOk) return;
      this.push(null);
      return;
    }
    // Killed by SIGPIPE: the next child stopped reading. When that child failed, its own error
    // is the one worth reporting (it destroys the pipeline); wait for its exit to know.
    const next = this.downstream;
    if (this.exit.signal === 'SIGPIPE' && next && !next.destroyed) {
      if (!next.exit) return;
      if (!next.exitedOk) return;
    }
    const info = { label: this.options.label, code: this.exit.code, signal: this.exit.signal, stderr: this.stderrText };
    this.destroy((this.options.mapFailure ?? defaultFailure)(info));
  }

  override _read(): void {
    if (!this.downstream && this.outputFd === undefined) this.proc?.stdout?.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    const stdin = this.proc?.stdin;
    if (!stdin || stdin.destroyed) return callback();
    if (stdin.write(chunk)) callback();
    else stdin.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.proc?.stdin?.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.pendingTimer);
    this.pending = [];
    const child = this.proc;
    if (child) killChild(child, 'SIGTERM');
    callback(err);
  }
}
