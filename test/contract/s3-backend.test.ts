import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Settings } from '../../src/config/job.js';
import { StorageError } from '../../src/errors/index.js';
import { isTransientFailure } from '../../src/scheduler/transient-failure.js';
import { MemoryLogger } from '../../src/logging/logger.js';
import { streamToStorage } from '../../src/pipeline/stream-to-storage.js';
import { FileSpool } from '../../src/storage/file-spool.js';
import { LocalBackend } from '../../src/storage/local-backend.js';
import { S3Backend } from '../../src/storage/s3-backend.js';
import { crc32Base64 } from '../../src/storage/s3-upload.js';
import type { TestS3Server } from '../global-setup.js';
import { awsEnv, createBucket, execFileAsync, s3Servers, s3Settings, tempDir, uniqueId } from '../helpers/services.js';
import { MiB, putWithSpool, runStorageContract, sha256Of, TestSource } from './storage-contract.js';

const PREFIX = 'backups/';
const text = (s: string) => Readable.from([Buffer.from(s)]);

/** The server the suite below runs against (one run per S3_TEST_SERVER server). */
let server: TestS3Server;

function settings(bucket: string, overrides: Partial<S3Settings> = {}): S3Settings {
  return s3Settings(bucket, { prefix: PREFIX, ...overrides }, server);
}

/** The aws CLI (a real, independent client) against the test server; returns stdout. */
async function aws(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('aws', [...args, '--endpoint-url', server.endpoint], { env: awsEnv(server) });
  return stdout;
}

/** `aws s3api …` with its JSON output parsed. */
async function s3api(...args: string[]): Promise<unknown> {
  const stdout = await aws('s3api', ...args, '--output', 'json');
  return stdout.trim() === '' ? {} : (JSON.parse(stdout) as unknown);
}

async function multipartUploads(bucket: string): Promise<{ Key: string; UploadId: string }[]> {
  const out = (await s3api('list-multipart-uploads', '--bucket', bucket)) as { Uploads?: { Key: string; UploadId: string }[] };
  return out.Uploads ?? [];
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// The same suite against every S3 server of the run (S3_TEST_SERVER: MinIO and versitygw by default).
describe.each(s3Servers())('S3 server $kind', (thisServer) => {
  let bucket: string;
  beforeAll(async () => {
    server = thisServer;
    bucket = await createBucket('contract', server);
  });

  const primary = thisServer.kind === s3Servers()[0]!.kind;

  runStorageContract(`s3 (${thisServer.kind})`, async () => new S3Backend(settings(bucket), { partSize: 5 * MiB }));

  describe('S3Backend specifics', () => {
    let backend: S3Backend;
    beforeAll(() => {
      backend = new S3Backend(settings(bucket), { partSize: 5 * MiB });
    });
    afterAll(() => backend.destroy());

    it('a put may give its own part size (raised to 5 MiB when smaller): 11 MiB in parts of "1 MiB" round-trips', async () => {
      const key = `part-size-${uniqueId()}.dump`;
      const source = new TestSource(11 * MiB);
      expect((await backend.put(key, source, { partSize: MiB })).size).toBe(11 * MiB);
      expect((await backend.stat(key))?.size).toBe(11 * MiB);
      await backend.delete(key);
    });

    it('names its location and keys as s3:// URLs under the prefix; part size defaults to 8 MiB, at least 5 MiB', () => {
      expect(backend.kind).toBe('s3');
      expect(backend.location).toBe(`s3://${bucket}/${PREFIX}`);
      expect(backend.urlOf('db/x y.dump')).toBe(`s3://${bucket}/${PREFIX}db/x y.dump`);
      expect(new S3Backend(settings(bucket)).partSize).toBe(8 * MiB);
      expect(new S3Backend(settings(bucket, { partSize: 64 * MiB })).partSize).toBe(64 * MiB);
      expect(new S3Backend(settings(bucket), { partSize: MiB }).partSize).toBe(5 * MiB);
    });

    it('an object it wrote reads back identical with the aws CLI', async () => {
      const key = `cli-${uniqueId()}/round trip ü.dump`;
      const source = new TestSource(12 * MiB + 777);
      await backend.put(key, source);
      const file = join(tempDir(), 'fetched.dump');
      await aws('s3', 'cp', '--only-show-errors', backend.urlOf(key), file);
      expect(createHash('sha256').update(readFileSync(file)).digest('hex')).toBe(source.digest());
    });

    it('an interrupted multipart put aborts its multipart upload (ListMultipartUploads is empty)', async () => {
      const key = `interrupted-${uniqueId()}/x.dump`;
      const source = new TestSource(20 * MiB, { pauseAt: 11 * MiB, failAt: 11 * MiB });
      const put = backend.put(key, source);
      const outcome = put.catch((e: unknown) => e);
      await source.stalled;
      // The multipart upload really exists before the body fails …
      await until('the multipart upload to start', async () => (await multipartUploads(bucket)).some((u) => u.Key === PREFIX + key));
      source.release();
      expect(await outcome).toBe(source.failure);
      // … and is gone once put has rejected.
      expect(await multipartUploads(bucket)).toEqual([]);
      expect(await backend.stat(key)).toBeUndefined();
    });

    it('an aborted put rejects only after the part in flight finished and the multipart upload was aborted', async () => {
      const proxy = await startProxy(new URL(server.endpoint), {
        delayMs: (req) => (req.method === 'PUT' && (req.url ?? '').includes('partNumber=1') ? 2000 : 0),
      });
      const slow = new S3Backend(settings(bucket, { endpoint: proxy.endpoint }), { partSize: 5 * MiB });
      try {
        const key = `slow-part-${uniqueId()}/x.dump`;
        const source = new TestSource(20 * MiB, { pauseAt: 6 * MiB });
        const controller = new AbortController();
        const outcome = slow.put(key, source, { signal: controller.signal }).catch((e: unknown) => e);
        await source.stalled;
        await until('part 1 to be sent', async () => proxy.requests.some((r) => r.url.includes('partNumber=1')));
        const reason = new Error('stop while a part is in flight (test)');
        controller.abort(reason);
        expect(await outcome).toBe(reason);
        // Checked at once: had put rejected before its cleanup, part 1 would still be in flight here.
        expect(await multipartUploads(bucket)).toEqual([]);
        expect(proxy.requests.filter((r) => r.method === 'DELETE' && r.url.includes('uploadId='))).toHaveLength(1);
      } finally {
        slow.destroy();
        await proxy.close();
      }
    });

    it('a part failing while another is in flight: the abort waits for the part in flight to be answered, so no upload comes back', async () => {
      // Part 1 reaches the proxy whole, which hands it to the server 1.5 s later; part 2 is refused
      // at once (its read-back differs from the stream). A client that hung up on part 1 and aborted
      // the upload at once would have part 1 reach the server after the abort (404 NoSuchUpload
      // here; a part still being stored at the abort brings the upload back, on versitygw hidden
      // from the listing until the next upload of the key).
      let heldDone: (status: number) => void = () => {};
      const held = new Promise<number>((r) => (heldDone = r));
      const proxy = await startProxy(new URL(server.endpoint), {
        holdMs: (req) => (req.method === 'PUT' && (req.url ?? '').includes('partNumber=1') ? 1500 : 0),
        onHeld: (status) => heldDone(status),
      });
      const viaProxy = new S3Backend(settings(bucket, { endpoint: proxy.endpoint }), { partSize: 5 * MiB });
      const key = `cut-${uniqueId()}/x.dump`;
      const good = randomBytes(11 * MiB);
      const bad = Buffer.from(good);
      bad[7 * MiB] = bad[7 * MiB]! ^ 0xff;
      const path = join(tempDir(), 'spool');
      writeFileSync(path, bad);
      const spool = new FileSpool();
      spool.onWritten(path, bad.length);
      try {
        await expect(viaProxy.put(key, Readable.from([good]), { spool })).rejects.toThrow(/upload of cut-/);
        // Part 1 was stored (200) before the put rejected: the abort came after its answer.
        expect(await Promise.race([held, 'still held'])).toBe(200);
      } finally {
        spool.close();
        viaProxy.destroy();
        await proxy.close();
      }
      // A new upload of the same key (which shows versitygw's hidden one), then none is open.
      expect((await backend.put(key, Readable.from([good]))).size).toBe(good.length);
      expect((await multipartUploads(bucket)).filter((u) => u.Key === PREFIX + key)).toEqual([]);
      expect(await sha256Of(await backend.get(key))).toBe(createHash('sha256').update(good).digest('hex'));
      await backend.delete(key);
    });

    it('a slow link is not a stalled upload: while its parts in flight are answered (each bound by its own timeout) the stall limit waits', async () => {
      // 2 MiB/s per part request through the proxy: two 5 MiB parts in flight take ~2.5 s, during
      // which the upload reads nothing more of its branch (the tee waits on it), against a stall
      // limit of 1.5 s.
      const proxy = await startProxy(new URL(server.endpoint), {
        rate: (req) => (req.method === 'PUT' && (req.url ?? '').includes('partNumber=') ? 2 * MiB : 0),
      });
      const slow = new S3Backend(settings(bucket, { endpoint: proxy.endpoint }), { partSize: 5 * MiB });
      const dir = tempDir();
      const key = `slow-link-${uniqueId()}.dump`;
      const source = new TestSource(21 * MiB);
      const t0 = Date.now();
      try {
        const logger = new MemoryLogger();
        const r = await streamToStorage({
          source,
          stages: [],
          key,
          local: new LocalBackend(dir),
          remote: slow,
          remoteTimeoutMs: 1500,
          logger,
        });
        expect(r.remoteError?.message).toBeUndefined();
        expect(logger.lines.filter((l) => /stalled/.test(l.msg))).toEqual([]);
      } finally {
        slow.destroy();
        await proxy.close();
      }
      // The link really was that slow: 21 MiB, two parts at a time at 2 MiB/s each (~5 s).
      expect(Date.now() - t0).toBeGreaterThan(4000);
      expect(await sha256Of(await backend.get(key))).toBe(source.digest());
      await backend.delete(key);
    });

    it("a part read back from the local file (spool) is retried after a 500 with a fresh read, carries the stream's checksum, and is stored complete", async () => {
      let failed = 0;
      const proxy = await startProxy(new URL(server.endpoint), {
        intercept: (req, res) => {
          const url = new URL(req.url ?? '/', 'http://proxy');
          if (failed > 0 || req.method !== 'PUT' || url.searchParams.get('partNumber') !== '2') return false;
          failed++;
          req.resume();
          req.on('end', () => {
            res.writeHead(500, { 'content-type': 'application/xml' });
            res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected once</Message></Error>');
          });
          return true;
        },
      });
      const viaProxy = new S3Backend(settings(bucket, { endpoint: proxy.endpoint }), { partSize: 5 * MiB });
      const data = randomBytes(11 * MiB);
      const path = join(tempDir(), 'spool');
      writeFileSync(path, data);
      const spool = new FileSpool();
      spool.onWritten(path, data.length);
      const key = `spool-retry-${uniqueId()}.dump`;
      try {
        expect((await viaProxy.put(key, Readable.from([data]), { spool })).size).toBe(data.length);
      } finally {
        spool.close();
        viaProxy.destroy();
        await proxy.close();
      }
      expect(failed).toBe(1);
      const parts = proxy.requests.filter((r) => r.method === 'PUT' && r.url.includes('partNumber='));
      // CRC32 when the server named the algorithm back at CreateMultipartUpload, else Content-MD5.
      const create = proxy.requests.find((r) => r.method === 'POST' && r.url.includes('uploads'));
      expect(create?.headers['x-amz-checksum-algorithm']).toBe('CRC32');
      const crc = create?.answer?.['x-amz-checksum-algorithm'] === 'CRC32';
      // MinIO and versitygw both name it back (an external S3_TEST_ENDPOINT may not).
      if (server.kind !== 'external') expect(crc).toBe(true);
      const sum = (b: Buffer) => (crc ? `crc32 ${crc32Base64(zlib.crc32(b))}` : `md5 ${createHash('md5').update(b).digest('base64')}`);
      const sentSum = (r: (typeof parts)[number]) =>
        crc ? `crc32 ${r.headers['x-amz-checksum-crc32']}` : `md5 ${r.headers['content-md5']}`;
      // Parts go out at once (queueSize): which part number and which body, whatever the order.
      const sent = parts.map((r) => `${new URL(r.url, 'http://p').searchParams.get('partNumber')} ${sentSum(r)}`).sort();
      expect(sent).toEqual(
        [
          `1 ${sum(data.subarray(0, 5 * MiB))}`,
          `2 ${sum(data.subarray(5 * MiB, 10 * MiB))}`,
          `2 ${sum(data.subarray(5 * MiB, 10 * MiB))}`,
          `3 ${sum(data.subarray(10 * MiB))}`,
        ].sort(),
      );
      // One checksum per part, not both.
      for (const r of parts) expect(r.headers[crc ? 'content-md5' : 'x-amz-checksum-crc32']).toBeUndefined();
      expect(await sha256Of(await backend.get(key))).toBe(createHash('sha256').update(data).digest('hex'));
      await backend.delete(key);
    });

    // A server that does not name the algorithm back (it ignores the header, or takes it without
    // saying so), or refuses it, gets an upload created without it: Content-MD5 parts, as before.
    it.each([
      { how: 'does not name CRC32 back', refuse: false },
      { how: 'refuses the header (400 InvalidArgument)', refuse: true },
    ])(
      'a server that $how at CreateMultipartUpload gets an upload without it and Content-MD5 parts; a read-back that differs is still refused',
      async ({ refuse }) => {
        const asksCrc = (req: IncomingMessage) =>
          req.method === 'POST' && (req.url ?? '').includes('uploads') && req.headers['x-amz-checksum-algorithm'] === 'CRC32';
        const proxy = await startProxy(new URL(server.endpoint), {
          intercept: (req, res) => {
            if (!refuse || !asksCrc(req)) return false;
            req.resume();
            req.on('end', () => {
              res.writeHead(400, { 'content-type': 'application/xml' });
              res.end(
                '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidArgument</Code><Message>unsupported header</Message></Error>',
              );
            });
            return true;
          },
          answerHeaders: (req, headers) => {
            if (asksCrc(req)) delete headers['x-amz-checksum-algorithm'];
            return headers;
          },
        });
        const viaProxy = new S3Backend(settings(bucket, { endpoint: proxy.endpoint }), { partSize: 5 * MiB });
        const data = randomBytes(11 * MiB);
        const putFrom = (key: string, file: Buffer) => putWithSpool(viaProxy, key, data, file);
        const key = `md5-parts-${uniqueId()}.dump`;
        const bad = Buffer.from(data);
        bad[7 * MiB] = bad[7 * MiB]! ^ 0xff;
        try {
          expect((await putFrom(key, data)).size).toBe(data.length);
          await expect(putFrom(`md5-differs-${uniqueId()}.dump`, bad)).rejects.toThrow(/upload of md5-differs-/);
        } finally {
          viaProxy.destroy();
          await proxy.close();
        }
        const of = (r: (typeof proxy.requests)[number]) => r.url.includes('md5-parts-');
        // Asked with CRC32 first, then created without it; an upload the server made is aborted.
        const creates = proxy.requests.filter((r) => of(r) && r.method === 'POST' && r.url.includes('uploads'));
        expect(creates.map((r) => r.headers['x-amz-checksum-algorithm'] ?? 'none')).toEqual(['CRC32', 'none']);
        const aborts = proxy.requests.filter((r) => of(r) && r.method === 'DELETE' && r.url.includes('uploadId='));
        expect(aborts).toHaveLength(refuse ? 0 : 1);
        const parts = proxy.requests.filter((r) => of(r) && r.method === 'PUT' && r.url.includes('partNumber='));
        expect(parts).toHaveLength(3);
        const md5 = (b: Buffer) => createHash('md5').update(b).digest('base64');
        expect(parts.map((r) => r.headers['content-md5']).sort()).toEqual(
          [md5(data.subarray(0, 5 * MiB)), md5(data.subarray(5 * MiB, 10 * MiB)), md5(data.subarray(10 * MiB))].sort(),
        );
        for (const r of parts) expect(r.headers['x-amz-checksum-crc32']).toBeUndefined();
        expect(await sha256Of(await backend.get(key))).toBe(createHash('sha256').update(data).digest('hex'));
        await backend.delete(key);
      },
    );

    it('a buffered part (no local file) and a small PutObject are retried after a 500 from their kept bytes, and stored complete', async () => {
      const failedOnce = new Set<string>();
      const proxy = await startProxy(new URL(server.endpoint), {
        intercept: (req, res) => {
          const url = new URL(req.url ?? '/', 'http://proxy');
          const which =
            url.searchParams.get('partNumber') === '2' ? 'part 2' : url.searchParams.size === 0 ? `put ${url.pathname}` : undefined;
          if (req.method !== 'PUT' || which === undefined || failedOnce.has(which)) return false;
          failedOnce.add(which);
          req.resume();
          req.on('end', () => {
            res.writeHead(503, { 'content-type': 'application/xml' });
            res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected once</Message></Error>');
          });
          return true;
        },
      });
      const viaProxy = new S3Backend(settings(bucket, { endpoint: proxy.endpoint }), { partSize: 5 * MiB });
      const big = randomBytes(11 * MiB);
      const small = randomBytes(1000);
      const id = uniqueId();
      try {
        // Chunks of 1 MiB, as a stream would bring them: the part is kept as its chunks.
        const chunks = Array.from({ length: 11 }, (_, i) => big.subarray(i * MiB, (i + 1) * MiB));
        expect((await viaProxy.put(`buffered-retry-${id}.dump`, Readable.from(chunks))).size).toBe(big.length);
        expect((await viaProxy.put(`small-retry-${id}.json`, Readable.from([small]), { contentLength: small.length })).size).toBe(1000);
      } finally {
        viaProxy.destroy();
        await proxy.close();
      }
      expect([...failedOnce].sort()).toEqual(['part 2', `put /${bucket}/${PREFIX}small-retry-${id}.json`]);
      const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
      expect(await sha256Of(await backend.get(`buffered-retry-${id}.dump`))).toBe(sha(big));
      expect(await sha256Of(await backend.get(`small-retry-${id}.json`))).toBe(sha(small));
      await backend.delete(`buffered-retry-${id}.dump`);
      await backend.delete(`small-retry-${id}.json`);
    });

    it('the whole contract run left no multipart upload behind', async () => {
      expect(await multipartUploads(bucket)).toEqual([]);
    });

    it('wrong secret key → storage-credentials, without the secret in the message', async () => {
      const secret = 'wrong-secret-' + uniqueId();
      const bad = new S3Backend(settings(bucket, { secretAccessKey: secret }));
      for (const attempt of [
        () => bad.checkAccess(),
        () => bad.put('x.dump', text('x')),
        async () => void (await bad.list()[Symbol.asyncIterator]().next()),
      ]) {
        const err = await attempt().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StorageError);
        expect(err).toMatchObject({ code: 'storage-credentials', exitCode: 7, hint: 'check STORAGE_ACCESS_KEY and STORAGE_SECRET_KEY' });
        expect((err as Error).message).not.toContain(secret);
        expect((err as Error).message).not.toContain(server.secretKey);
      }
    });

    it('missing bucket → storage-bucket', async () => {
      const missing = `missing-${uniqueId()}`;
      const bad = new S3Backend(settings(missing));
      for (const attempt of [
        () => bad.checkAccess(),
        () => bad.put('x.dump', text('x')),
        async () => void (await bad.list()[Symbol.asyncIterator]().next()),
      ]) {
        const err = await attempt().catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'storage-bucket', hint: 'create it with `pgbak init` (or aws s3 mb)' });
        expect((err as Error).message).toBe(`S3 bucket "${missing}" does not exist at ${server.endpoint}`);
      }
    });

    // These two never reach the S3 server (a closed port, a black hole): run once, with the primary server.
    if (primary) {
      it('closed port → storage-endpoint naming the endpoint', async () => {
        const port = await closedPort();
        const endpoint = `http://127.0.0.1:${port}`;
        const bad = new S3Backend(settings(bucket, { endpoint }));
        for (const attempt of [() => bad.checkAccess(), () => bad.put('x.dump', text('x'))]) {
          const err = await attempt().catch((e: unknown) => e);
          expect(err).toMatchObject({ code: 'storage-endpoint', hint: 'check STORAGE_ENDPOINT and that MinIO/S3 is running' });
          expect((err as Error).message).toMatch(new RegExp(`^S3 endpoint unreachable: ${endpoint} \\(.*ECONNREFUSED.*\\)$`));
        }
      });

      it('black-holed endpoint (accepts, never answers) → storage-timeout naming STORAGE_TIMEOUT, within the timeout', async () => {
        const sockets = new Set<Socket>();
        const hole = createNetServer((s) => {
          sockets.add(s);
          s.on('error', () => undefined);
          s.resume();
        });
        await new Promise<void>((r) => hole.listen(0, '127.0.0.1', r));
        const endpoint = `http://127.0.0.1:${(hole.address() as AddressInfo).port}`;
        const bad = new S3Backend(settings(bucket, { endpoint, timeoutMs: 1500 }));
        try {
          for (const [what, attempt] of [
            ['checkAccess', () => bad.checkAccess()],
            ['stat', () => bad.stat('x.dump')],
            ['get', () => bad.get('x.dump')],
            ['delete', () => bad.delete('x.dump')],
            ['list', async () => void (await bad.list()[Symbol.asyncIterator]().next())],
            ['small put', () => bad.put('x.json', text('{}'), { contentLength: 2 })],
          ] as const) {
            const t0 = Date.now();
            const err = await (attempt as () => Promise<unknown>)().catch((e: unknown) => e);
            expect(Date.now() - t0, what).toBeLessThan(5000);
            expect(err, what).toBeInstanceOf(StorageError);
            expect(err, what).toMatchObject({ code: 'storage-timeout', exitCode: 7 });
            expect((err as Error).message, what).toContain(`${endpoint} did not answer within 1.5s (STORAGE_TIMEOUT)`);
            expect((err as StorageError).hint, what).toContain('STORAGE_TIMEOUT');
          }
        } finally {
          bad.destroy();
          for (const s of sockets) s.destroy();
          await new Promise((r) => hole.close(r));
        }
      });
    }

    it('ensureBucket creates a missing bucket once, then reports it exists', async () => {
      const name = `ensure-${uniqueId()}`;
      const fresh = new S3Backend(settings(name));
      expect(await fresh.ensureBucket()).toBe('created');
      expect(await fresh.ensureBucket()).toBe('exists');
      await s3api('head-bucket', '--bucket', name);
      await fresh.checkAccess();
    });

    if (thisServer.kind === 'versitygw') {
      it('setLifecycle on a server without lifecycle rules (versitygw: NotImplemented) → storage-unsupported, not a retried server error', async () => {
        const name = await createBucket('lifecycle', server);
        const err = await new S3Backend(settings(name)).setLifecycle(30).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StorageError);
        expect(err).toMatchObject({ code: 'storage-unsupported', exitCode: 7 });
        expect((err as Error).message).toBe(`S3 lifecycle configuration is not supported by ${server.endpoint} (NotImplemented)`);
        // A missing feature is not an overloaded server: the daemon must not retry a run for it.
        expect(isTransientFailure(err)).toBe(false);
      });
    } else {
      it('setLifecycle(30) installs an expiry rule for the prefix (read back with the aws CLI), sent with Content-MD5', async () => {
        const name = await createBucket('lifecycle', server);
        const proxy = await startProxy(new URL(server.endpoint));
        const viaProxy = new S3Backend(settings(name, { endpoint: proxy.endpoint }));
        try {
          await viaProxy.setLifecycle(30);
        } finally {
          viaProxy.destroy();
          await proxy.close();
        }
        const sent = proxy.requests.find((r) => r.method === 'PUT' && r.url.includes('lifecycle'));
        expect(sent?.body).toContain(
          '<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload>',
        );
        expect(sent?.headers['content-md5']).toBe(createHash('md5').update(sent!.body).digest('base64'));
        const out = (await s3api('get-bucket-lifecycle-configuration', '--bucket', name)) as { Rules: Record<string, unknown>[] };
        expect(out.Rules).toHaveLength(1);
        // MinIO accepts AbortIncompleteMultipartUpload but does not store it (it expires stale uploads itself).
        expect(out.Rules[0]).toMatchObject({
          ID: 'pgbak-expire-backups',
          Status: 'Enabled',
          Expiration: { Days: 30 },
          Filter: { Prefix: PREFIX },
        });
        await expect(new S3Backend(settings(name)).setLifecycle(0)).rejects.toThrow(RangeError);
      });
    }

    describe('when aborting the multipart upload fails too (proxy that drops AbortMultipartUpload)', () => {
      let proxy: Proxy;
      let flaky: S3Backend;
      beforeAll(async () => {
        proxy = await startProxy(new URL(server.endpoint), { intercept: injectFaults });
        flaky = new S3Backend(settings(bucket, { endpoint: proxy.endpoint }), { partSize: 5 * MiB });
      });
      afterAll(async () => {
        flaky.destroy();
        await proxy.close();
        for (const u of await multipartUploads(bucket))
          await s3api('abort-multipart-upload', '--bucket', bucket, '--key', u.Key, '--upload-id', u.UploadId);
      });

      it('reports the failed part upload, not the failed abort', async () => {
        const key = `part-fails-${uniqueId()}/x.dump`;
        const err = await flaky.put(key, new TestSource(13 * MiB)).catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'storage-server-error' });
        expect((err as Error).message).toContain('injected part failure');
        expect((err as Error).message).toContain('HTTP 500');
        // The abort really failed: the incomplete upload is still there.
        expect((await multipartUploads(bucket)).map((u) => u.Key)).toContain(PREFIX + key);
      });

      it('reports the body error, not the failed abort', async () => {
        const key = `body-fails-${uniqueId()}/x.dump`;
        const source = new TestSource(20 * MiB, { pauseAt: 6 * MiB, failAt: 6 * MiB });
        const outcome = flaky.put(key, source).catch((e: unknown) => e);
        await source.stalled;
        await until('the multipart upload to start', async () => (await multipartUploads(bucket)).some((u) => u.Key === PREFIX + key));
        source.release();
        expect(await outcome).toBe(source.failure);
        expect((await multipartUploads(bucket)).map((u) => u.Key)).toContain(PREFIX + key);
      });
    });
  });
});

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

interface Proxy {
  readonly endpoint: string;
  /** Every request seen (bodies kept up to 64 KiB). */
  readonly requests: {
    method: string;
    url: string;
    headers: Record<string, string | string[] | undefined>;
    body: string;
    /** The server's answer's headers, as the client got them (forwarded requests only). */
    answer?: Record<string, string | string[] | undefined>;
  }[];
  close(): Promise<void>;
}

/**
 * A forwarding HTTP proxy to the real S3 server that records requests; `intercept` may answer a
 * request itself (returning true). Headers (Host included) pass unchanged, so signatures stay valid.
 * `delayMs` holds a request back before it is forwarded; `rate` forwards a request's body at that
 * many bytes per second (a slow link: the client's socket backs up); `holdMs` reads a request's whole body and
 * forwards it that much later even if the client has hung up meanwhile (the bytes were on the wire:
 * the server still gets the request), calling `onHeld` with the server's status once answered.
 * `answerHeaders` may change the headers of a forwarded answer before the client gets them.
 */
async function startProxy(
  target: URL,
  options: {
    intercept?: (req: IncomingMessage, res: ServerResponse) => boolean;
    delayMs?: (req: IncomingMessage) => number;
    rate?: (req: IncomingMessage) => number;
    holdMs?: (req: IncomingMessage) => number;
    onHeld?: (status: number) => void;
    answerHeaders?: (
      req: IncomingMessage,
      headers: Record<string, string | string[] | undefined>,
    ) => Record<string, string | string[] | undefined>;
  } = {},
): Promise<Proxy> {
  const requests: Proxy['requests'][number][] = [];
  const hold = (req: IncomingMessage, res: ServerResponse, ms: number) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () =>
      setTimeout(() => {
        const upstream = request(
          { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
          (up) => {
            up.on('end', () => options.onHeld?.(up.statusCode ?? 0));
            if (res.destroyed) up.resume();
            else {
              res.writeHead(up.statusCode ?? 502, up.headers);
              up.pipe(res);
            }
          },
        );
        upstream.on('error', () => res.destroy());
        upstream.end(Buffer.concat(chunks));
      }, ms),
    );
  };
  const forward = (req: IncomingMessage, res: ServerResponse, record: Proxy['requests'][number]) => {
    req.on('data', (chunk: Buffer) => {
      if (record.body.length < 64 * 1024) record.body += chunk.toString('utf8');
    });
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        record.answer = options.answerHeaders ? options.answerHeaders(req, { ...up.headers }) : up.headers;
        res.writeHead(up.statusCode ?? 502, record.answer);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    const rate = options.rate?.(req) ?? 0;
    if (rate <= 0) {
      req.pipe(upstream);
      return;
    }
    req.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      req.pause();
      setTimeout(() => req.resume(), (chunk.length / rate) * 1000);
    });
    req.on('end', () => upstream.end());
  };
  const server = createServer((req, res) => {
    const record: Proxy['requests'][number] = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: '' };
    requests.push(record);
    if (options.intercept?.(req, res)) return;
    const held = options.holdMs?.(req) ?? 0;
    if (held > 0) return hold(req, res, held);
    const delay = options.delayMs?.(req) ?? 0;
    if (delay > 0) setTimeout(() => forward(req, res, record), delay);
    else forward(req, res, record);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * Two faults: part 2 of an upload whose key contains "part-fails-" gets a 500 InternalError, and
 * every AbortMultipartUpload (DELETE ?uploadId=) has its connection dropped.
 */
function injectFaults(req: IncomingMessage, res: ServerResponse): boolean {
  const url = new URL(req.url ?? '/', 'http://proxy');
  if (req.method === 'DELETE' && url.searchParams.has('uploadId')) {
    req.socket.destroy();
    return true;
  }
  if (req.method === 'PUT' && url.searchParams.get('partNumber') === '2' && url.pathname.includes('part-fails-')) {
    req.resume();
    req.on('end', () => {
      res.writeHead(500, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected part failure</Message></Error>');
    });
    return true;
  }
  return false;
}
