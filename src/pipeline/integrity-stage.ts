import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { IntegrityError } from '../errors/index.js';
import { paceGc } from '../model/gc-pacer.js';

export interface ExpectedContent {
  /** For messages: the key or path being read. */
  readonly label: string;
  readonly size: number;
  readonly sha256: string;
}

/** Default tail held back until the digest is known: far more than gpg's or zstd's trailers. */
const DEFAULT_HOLD_BACK = 1024 * 1024;

/**
 * Passes bytes through while checking them against the size and sha256 a manifest recorded,
 * and HOLDS BACK the last `holdBack` bytes until the whole input was seen and matched. A
 * consumer downstream (gpg, zstd, pg_restore) therefore never receives the end of a corrupt
 * or truncated artifact: a pg_restore reading it in one transaction cannot reach its COMMIT,
 * which needs the archive's final bytes. On a mismatch the stage fails with IntegrityError
 * (too many bytes fail at once, without waiting for the end).
 */
export class IntegrityStage extends Transform {
  private readonly hash = createHash('sha256');
  private readonly held: Buffer[] = [];
  private heldBytes = 0;
  /** Bytes seen so far. */
  bytes = 0;
  /** True once the whole input matched. */
  verified = false;

  constructor(
    private readonly expected: ExpectedContent,
    private readonly options: { holdBack?: number; onBytes?: (total: number) => void } = {},
  ) {
    super({ highWaterMark: 64 * 1024 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.options.onBytes?.(this.bytes);
    paceGc(chunk.length);
    if (this.bytes > this.expected.size) {
      callback(
        new IntegrityError(`${this.expected.label} is larger than the ${this.expected.size} bytes its manifest records`, { hint: HINT }),
      );
      return;
    }
    const holdBack = this.options.holdBack ?? DEFAULT_HOLD_BACK;
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    while (this.held.length > 0 && this.heldBytes - this.held[0]!.length >= holdBack) {
      const first = this.held.shift()!;
      this.heldBytes -= first.length;
      this.push(first);
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    const problem = mismatch(this.expected, this.bytes, this.hash.digest('hex'));
    if (problem) {
      this.held.length = 0;
      callback(new IntegrityError(problem, { hint: HINT }));
      return;
    }
    this.verified = true;
    for (const chunk of this.held) this.push(chunk);
    this.held.length = 0;
    callback();
  }
}

const HINT = 'the backup is corrupt or was changed after it was written; use another copy (--from local|remote) or another backup';

/** Why `size`/`sha256` differ from what was expected, or undefined when they match. */
export function mismatch(expected: ExpectedContent, size: number, sha256: string): string | undefined {
  if (size !== expected.size) {
    return `${expected.label} is ${size} bytes, its manifest records ${expected.size}${size < expected.size ? ' (truncated)' : ''}`;
  }
  if (sha256 !== expected.sha256) return `${expected.label}: sha256 ${sha256} differs from the manifest's ${expected.sha256}`;
  return undefined;
}
