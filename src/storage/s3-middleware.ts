import type { S3Client } from '@aws-sdk/client-s3';
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { DeadlineExceeded, describe } from './s3-errors.js';

/** Middleware and request-handler patches of pgbak's S3 client (cancellation, deadlines, Content-MD5). */

/**
 * The signal that the requests made in this async context must also honour: the cancellation of
 * one put (lib-storage sends its requests without one), or the deadline of a multipart abort.
 */
export const requestScope = new AsyncLocalStorage<AbortSignal>();

/** Both signals in one (either may be absent). */
export function anySignal(a: AbortSignal | undefined, b: AbortSignal | undefined): AbortSignal | undefined {
  return a && b ? AbortSignal.any([a, b]) : (a ?? b);
}

/** An AbortMultipartUpload that failed, carrying the failure that made the upload abort. */
export class CleanupFailure extends Error {
  constructor(
    cause: unknown,
    readonly original: unknown,
  ) {
    super(`aborting the multipart upload failed: ${describe(cause)}`, { cause });
    this.name = 'CleanupFailure';
  }
}

/**
 * lib-storage throws the error of AbortMultipartUpload when that cleanup fails, hiding the failure
 * that caused it. This middleware remembers the first failed request of each multipart upload and
 * turns a failed abort into a CleanupFailure that carries it, so `put` can report the original.
 */
export function trackMultipartCleanup(client: S3Client, timeoutMs: number): void {
  const failures = new Map<string, unknown>();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input: object = args.input;
      const uploadId = 'UploadId' in input && typeof input.UploadId === 'string' ? input.UploadId : undefined;
      const isAbort = context.commandName === 'AbortMultipartUploadCommand';
      try {
        // The abort is cleanup: not cancelled with the upload's requests, but given one timeout.
        if (isAbort) return await requestScope.run(deadlineSignal(timeoutMs), () => next(args));
        return await next(args);
      } catch (err) {
        if (uploadId === undefined) throw err;
        if (isAbort) throw new CleanupFailure(err, failures.get(uploadId));
        if (!failures.has(uploadId)) failures.set(uploadId, err);
        throw err;
      } finally {
        if (isAbort && uploadId !== undefined) failures.delete(uploadId);
      }
    },
    { step: 'initialize', name: 'pgbakMultipartCleanup' },
  );
}

/** A signal that aborts after `timeoutMs` (with DeadlineExceeded); its timer never holds the process. */
function deadlineSignal(timeoutMs: number): AbortSignal {
  const controller = new AbortController();
  setTimeout(() => controller.abort(new DeadlineExceeded(timeoutMs)), timeoutMs).unref();
  return controller.signal;
}

/**
 * lib-storage sends its requests (parts, complete, abort) without an abort signal. This makes
 * every request of the client also honour the signal of its async context (`requestScope`), so
 * a put can cancel its requests in flight and bound its cleanup.
 */
export function honourRequestScope(client: S3Client): void {
  type Handle = (request: unknown, options?: { abortSignal?: AbortSignal | undefined }) => Promise<unknown>;
  const handler = client.config.requestHandler as unknown as { handle: Handle };
  const handle = handler.handle.bind(handler);
  handler.handle = (request, options = {}) => {
    const scope = requestScope.getStore();
    if (!scope) return handle(request, options);
    return handle(request, { ...options, abortSignal: anySignal(options.abortSignal, scope) });
  };
}

/**
 * PutBucketLifecycleConfiguration requires an integrity header. The SDK sends only
 * x-amz-checksum-crc32 (MinIO of 2026 accepts it); AWS also accepts Content-MD5, which older MinIO
 * and Ceph require, so it is added too.
 */
export function addContentMd5(client: S3Client): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown };
      if (context.commandName === 'PutBucketLifecycleConfigurationCommand' && request.headers && typeof request.body === 'string') {
        request.headers['content-md5'] = createHash('md5').update(request.body).digest('base64');
      }
      return next(args);
    },
    { step: 'build', name: 'pgbakContentMd5' },
  );
}

/**
 * A request body made anew for each attempt: a part read back from a file (s3-spooled-upload.ts).
 * The SDK never retries a request whose body is a stream (it could not send it again); this
 * placeholder is not one, and each attempt gets its own stream of the same bytes.
 */
export class FreshBody {
  constructor(readonly make: () => Readable) {}
}

/** Inside the retry loop, replaces a FreshBody with a new stream on each attempt. */
export function freshBodyPerAttempt(client: S3Client): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { body?: unknown };
      if (!(request.body instanceof FreshBody)) return next(args);
      // A copy: the retry loop's own request keeps the placeholder for the next attempt.
      const copy: object = Object.assign(Object.create(Object.getPrototypeOf(request) as object) as object, request, {
        body: request.body.make(),
      });
      return next({ ...args, request: copy });
    },
    { step: 'finalizeRequest', priority: 'low', name: 'pgbakFreshBody' },
  );
}
