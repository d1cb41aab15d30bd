import { PassThrough, Writable } from 'node:stream';

/**
 * An optional branch that has not drained for `afterMs` is failed with `error()` and dropped. Not
 * while its consumer says it waits on a server that bounds its own requests
 * ({@link Tee.awaitingServer}): the limit then counts from the end of that wait.
 */
export interface TeeStall {
  readonly afterMs: number;
  readonly error: () => Error;
}

export interface TeeBranchSpec {
  readonly name: string;
  readonly required: boolean;
  /** Only for an optional branch: how long it may hold the others back. */
  readonly stall?: TeeStall | undefined;
}

/** One output of a Tee: a readable branch handed to a consumer (a storage put). */
export interface TeeBranch {
  readonly name: string;
  readonly stream: PassThrough;
  /** A required branch that fails destroys the whole tee; an optional one is dropped. */
  readonly required: boolean;
  readonly stall: TeeStall | undefined;
  failed: Error | undefined;
}

/**
 * Writes every chunk to several branches with backpressure: the next chunk is accepted only
 * when every live branch has drained, so memory stays bounded by the branches' buffers. An
 * optional branch that fails (an upload) is dropped and the others go on; a required branch
 * that fails (the local file) fails the tee. An optional branch with a `stall` limit that keeps
 * the others waiting longer than that (a frozen S3 server) is failed and dropped too, so the
 * local file goes on at full speed and pg_dump's snapshot is not held open by the upload.
 */
export class Tee extends Writable {
  readonly branches: TeeBranch[];
  /** Branches whose consumer waits on its server's answers (see awaitingServer). */
  private readonly awaiting = new Set<string>();
  /** When each branch's consumer last stopped waiting on its server (performance.now()). */
  private readonly resumed = new Map<string, number>();

  constructor(specs: readonly TeeBranchSpec[], highWaterMark = 256 * 1024) {
    super({ highWaterMark });
    this.branches = specs.map((s) => {
      const stream = new PassThrough({ highWaterMark });
      // A branch's failure is reported by fail(); its consumer may be gone when it errors.
      stream.on('error', () => undefined);
      return { name: s.name, required: s.required, stall: s.required ? undefined : s.stall, stream, failed: undefined };
    });
  }

  branch(name: string): PassThrough {
    const b = this.branches.find((x) => x.name === name);
    if (!b) throw new Error(`Tee: no branch ${name}`);
    return b.stream;
  }

  /** Mark a branch as failed (its consumer rejected). Required → the tee fails with `err`. */
  fail(name: string, err: Error): void {
    const b = this.branches.find((x) => x.name === name);
    if (!b || b.failed) return;
    b.failed = err;
    if (b.required) {
      this.destroy(err);
    } else {
      // With the error, so a consumer still reading (an upload) stops with this cause.
      b.stream.destroy(err);
    }
  }

  /**
   * The consumer of branch `name` reads nothing more for now because it waits for its server to
   * answer the requests it has in flight (`true`), which bound themselves (an upload's parts: no
   * traffic for STORAGE_TIMEOUT fails them), or reads again (`false`). Meanwhile its stall limit
   * does not run out; it counts again from the end of the wait. A part that takes longer than the
   * limit on a slow link is then not taken for a frozen server.
   */
  awaitingServer(name: string, waiting: boolean): void {
    if (waiting) this.awaiting.add(name);
    else {
      this.awaiting.delete(name);
      this.resumed.set(name, performance.now());
    }
  }

  private live(): TeeBranch[] {
    return this.branches.filter((b) => !b.failed && !b.stream.destroyed);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    let pending = 0;
    const done = () => {
      if (--pending === 0) callback();
    };
    pending++;
    for (const b of this.live()) {
      if (!b.stream.write(chunk)) {
        pending++;
        const stall = b.stall;
        const since = performance.now();
        let timer: NodeJS.Timeout | undefined;
        const arm = (ms: number) => {
          if (!stall) return;
          timer = setTimeout(() => {
            if (this.awaiting.has(b.name)) return arm(stall.afterMs);
            const idle = performance.now() - Math.max(since, this.resumed.get(b.name) ?? 0);
            if (idle < stall.afterMs) arm(stall.afterMs - idle);
            else this.fail(b.name, stall.error());
          }, ms);
        };
        arm(stall?.afterMs ?? 0);
        const onDrain = () => {
          clearTimeout(timer);
          b.stream.off('close', onDrain);
          b.stream.off('drain', onDrain);
          done();
        };
        b.stream.once('drain', onDrain);
        b.stream.once('close', onDrain);
      }
    }
    done();
  }

  override _final(callback: (error?: Error | null) => void): void {
    for (const b of this.live()) b.stream.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // After a normal finish (autoDestroy) the ended branches are still being read: leave them be.
    for (const b of this.branches) {
      if (b.stream.destroyed || (!err && b.stream.writableEnded)) continue;
      b.stream.destroy(err ?? new Error('aborted'));
    }
    callback(err);
  }
}
