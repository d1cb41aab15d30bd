import { spawn, type ChildProcess } from 'node:child_process';
import { Duplex } from 'node:stream';
import { redact } from '../config/redact.js';
import { ProcessError, AppError, PgToolError } from '../errors/index.js';

export interface ChildStageOptions {
  /** Name shown in errors: "pg_dump", "gpg", "zstd". */
  readonly label: string;
  readonly command: string;
  readonly args: readonly string[];
  /** Extra environment for the child (merged over process.env). */
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

/** The default failure of a child: a ProcessError with how it ended and the tail of its stderr. */
export function defaultFailure(info: ChildFailure): AppError {
  const how = info.signal ? `was killed by ${info.signal}` : `exited with code ${info.code}`;
  const tail = info.stderr.trim().split('\n').slice(-3).join(' | ');
  return new ProcessError(`${info.label} ${how}${tail ? `: ${tail}` : ''}`);
}

/**
 * A child process as a stream stage. Its output ends ONLY after the child exited with code 0:
 * a killed pg_dump closes its stdout cleanly, and a stage that trusted end-of-file would pass a
 * truncated dump on as complete. A non-zero exit or a signal destroys the stream with an error
 * naming the process and the tail of its stderr. Destroying the stage kills the child.
 */
export class ChildStage extends Duplex {
  readonly child: ChildProcess;
  private stderrText = '';
  private stdoutEnded = false;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly options: ChildStageOptions;

  constructor(options: ChildStageOptions) {
    super({ allowHalfOpen: true, readableHighWaterMark: 1024 * 1024, writableHighWaterMark: 1024 * 1024 });
    this.options = options;
    this.child = spawn(options.command, [...options.args], {
      env: { ...process.env, ...options.env },
      stdio: [options.input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    const child = this.child;
    child.on('error', (err: NodeJS.ErrnoException) => {
      const e =
        err.code === 'ENOENT'
          ? options.label.startsWith('pg_')
            ? new PgToolError(`${options.label} not found at ${options.command}`)
            : new ProcessError(`${options.label} not found (${options.command})`, { hint: `install ${options.label}`, cause: err })
          : new ProcessError(`${options.label} could not start: ${err.message}`, { cause: err });
      this.destroy(e);
    });
    child.stdout!.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) child.stdout!.pause();
    });
    child.stdout!.on('end', () => {
      this.stdoutEnded = true;
      this.maybeFinish();
    });
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
      this.maybeFinish();
    });
    if (!options.input) this.end();
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

  private maybeFinish(): void {
    if (!this.stdoutEnded || !this.exit || this.destroyed) return;
    const { code, signal } = this.exit;
    if (code === 0 && !signal) {
      this.push(null);
    } else {
      const info = { label: this.options.label, code, signal, stderr: this.stderrText };
      this.destroy((this.options.mapFailure ?? defaultFailure)(info));
    }
  }

  override _read(): void {
    this.child.stdout?.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    const stdin = this.child.stdin;
    if (!stdin || stdin.destroyed) return callback();
    if (stdin.write(chunk)) callback();
    else stdin.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.child.stdin?.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    callback(err);
  }
}
