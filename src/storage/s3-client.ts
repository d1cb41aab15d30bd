import { createHash, createHmac } from 'node:crypto';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { errnoCode } from '../errors/index.js';
import { paceGc } from '../model/gc-pacer.js';
import { DeadlineExceeded } from './s3-errors.js';
import { EndpointSilent, type SilentEndpoints } from './silent-endpoints.js';

/**
 * pgbak's own S3 client: the REST calls pgbak makes (about twenty), signed with AWS Signature
 * Version 4, over node's http/https with keep-alive. It replaces the AWS SDK, whose S3 client alone
 * was ~15 MB of every upload's peak RSS and ~100 ms of its start-up (docs/performance.md), and
 * whose new versions require Node 22. What it does, and nothing more:
 * - path-style requests to one endpoint (MinIO, versitygw, Ceph, R2, AWS), static credentials;
 * - payloads signed as UNSIGNED-PAYLOAD when streamed (with a checksum the server checks: a
 *   part's CRC32 or Content-MD5, see s3-upload.ts),
 *   hashed when they are small request documents;
 * - up to 3 attempts for network errors, timeouts, 5xx and throttling, with jittered backoff, for
 *   bodies that can be sent again (a Buffer, or a factory that makes a fresh stream per attempt);
 * - a connect timeout and a socket idle timeout (a black-holed server is noticed), and an abort
 *   signal per request (its reason becomes the cause of an `AbortError`);
 * - failures as S3Error (name = S3's error code, `$metadata.httpStatusCode`), or node's own
 *   network errors: the shapes src/storage/s3-errors.ts classifies.
 */

export interface S3ClientConfig {
  readonly endpoint: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Time to set up a TCP connection. */
  readonly connectTimeoutMs: number;
  /** Longest silence on a socket (no byte read or written) before the request fails. */
  readonly socketTimeoutMs: number;
  /** Attempts per request (default 3). */
  readonly maxAttempts?: number | undefined;
  /**
   * The run's endpoints that did not answer in time: a request to one of them fails at once
   * (EndpointSilent), and a request that gets no answer in time marks its endpoint there.
   */
  readonly silence?: SilentEndpoints | undefined;
}

/** A body that can be sent again: bytes, or a factory making a fresh stream for each attempt. */
export type S3Body = Buffer | string | (() => Readable);

export interface S3Request {
  readonly method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
  readonly bucket: string;
  /** The object key (the whole key, prefix included); absent for a bucket request. */
  readonly key?: string | undefined;
  /** Query parameters; `''` for a bare subresource (`?uploads`), undefined ones are left out. */
  readonly query?: Readonly<Record<string, string | undefined>>;
  readonly headers?: Readonly<Record<string, string | undefined>>;
  readonly body?: S3Body | undefined;
  /** Required for a stream body. */
  readonly contentLength?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

export interface S3Response {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The response document (empty for HEAD and most PUT/DELETE). */
  readonly body: string;
}

/** An error answer of the S3 server: `name` and `Code` are S3's error code (NoSuchKey, AccessDenied …). */
export class S3Error extends Error {
  readonly Code: string;
  readonly $metadata: { readonly httpStatusCode: number; readonly requestId?: string | undefined };
  /** The server's clock when it answered (its Date header), in ms since the epoch. */
  readonly serverTime: number | undefined;
  constructor(code: string, message: string, status: number, requestId?: string, serverTime?: number) {
    super(message);
    this.name = code;
    this.Code = code;
    this.$metadata = { httpStatusCode: status, requestId };
    this.serverTime = serverTime;
  }
}

/** A request stopped by its signal; the signal's reason is the cause. */
export class RequestAborted extends Error {
  constructor(reason: unknown) {
    super(reason instanceof Error ? reason.message : 'request aborted', { cause: reason });
    this.name = 'AbortError';
  }
}

/** No connection in time, or a silent socket (the message tells which: s3-errors.ts reads it). */
export class RequestTimeout extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TimeoutError';
  }
}

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const UNSIGNED = 'UNSIGNED-PAYLOAD';
/** Codes for answers without an XML error document (HEAD requests, proxies). */
const STATUS_CODES: Record<number, string> = {
  301: 'PermanentRedirect',
  304: 'NotModified',
  400: 'BadRequest',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  412: 'PreconditionFailed',
  429: 'TooManyRequests',
  500: 'InternalError',
  501: 'NotImplemented',
  502: 'BadGateway',
  503: 'ServiceUnavailable',
  504: 'GatewayTimeout',
};
const RETRIED_CODES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestTimeout', 'InternalError', 'ServiceUnavailable']);
const RETRIED_ERRNO = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN']);
/** A signature refused for its time: the request is signed again with the server's clock. */
const CLOCK_SKEW_CODES = new Set(['RequestTimeTooSkewed', 'RequestExpired', 'RequestInTheFuture', 'InvalidSignatureException']);

/** RFC 3986 encoding, as SigV4 wants it (encodeURIComponent leaves !'()* alone). */
export function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** `20130524T000000Z`. */
export function amzDate(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

/** The base64 MD5 of a request document (its Content-MD5 header). */
export function md5Base64(text: string): string {
  return createHash('md5').update(text).digest('base64');
}

function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/**
 * The `Authorization` header of a SigV4 request. `path` is already encoded; `headers` (lowercase
 * names) are all signed and must include host, x-amz-date and x-amz-content-sha256.
 */
export function authorization(o: {
  readonly method: string;
  readonly path: string;
  readonly query: readonly (readonly [string, string])[];
  readonly headers: Readonly<Record<string, string>>;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly region: string;
  readonly service?: string;
}): string {
  const date = o.headers['x-amz-date'];
  const payload = o.headers['x-amz-content-sha256'];
  if (!date || !payload) throw new Error('x-amz-date and x-amz-content-sha256 must be set before signing');
  const names = Object.keys(o.headers).sort();
  const canonicalQuery = o.query
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonicalHeaders = names.map((n) => `${n}:${String(o.headers[n]).trim().replace(/\s+/g, ' ')}\n`).join('');
  const signed = names.join(';');
  const request = [o.method, o.path, canonicalQuery, canonicalHeaders, signed, payload].join('\n');
  const day = date.slice(0, 8);
  const scope = `${day}/${o.region}/${o.service ?? 's3'}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', date, scope, sha256Hex(request)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${o.secretAccessKey}`, day), o.region), o.service ?? 's3'), 'aws4_request');
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  return `AWS4-HMAC-SHA256 Credential=${o.accessKeyId}/${scope}, SignedHeaders=${signed}, Signature=${signature}`;
}

/** No answer in time: a silent socket, no connection in time, or the caller's deadline (not a stop). */
function gotNoAnswer(err: unknown): boolean {
  return err instanceof RequestTimeout || (err instanceof RequestAborted && err.cause instanceof DeadlineExceeded);
}

function isRetried(err: unknown): boolean {
  if (err instanceof RequestAborted) return false;
  if (err instanceof S3Error) {
    const status = err.$metadata.httpStatusCode;
    return (status >= 500 && status !== 501) || status === 429 || RETRIED_CODES.has(err.Code);
  }
  if (err instanceof RequestTimeout) return true;
  const code = errnoCode(err);
  return (code !== undefined && RETRIED_ERRNO.has(code)) || (err instanceof Error && /socket hang up/i.test(err.message));
}

/** Waits `ms`, or rejects with RequestAborted when `signal` aborts first. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new RequestAborted(signal.reason));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new RequestAborted(signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The S3Error an error answer stands for (its XML document, else its status). */
function errorOf(status: number, headers: IncomingHttpHeaders, body: string): S3Error {
  const requestId = typeof headers['x-amz-request-id'] === 'string' ? headers['x-amz-request-id'] : undefined;
  const code = xmlText(body, 'Code') || STATUS_CODES[status] || `Http${status}`;
  const message = xmlText(body, 'Message') || `${code} (HTTP ${status})`;
  const date = typeof headers.date === 'string' ? Date.parse(headers.date) : Number.NaN;
  return new S3Error(code, message, status, requestId, Number.isNaN(date) ? undefined : date);
}

export class S3Client {
  private readonly url: URL;
  private readonly agent: http.Agent;
  private readonly basePath: string;
  private readonly maxAttempts: number;
  /**
   * Milliseconds to add to this host's clock when signing: set from the server's Date header when
   * it refuses a signature for its time (a host whose clock is off still reaches its bucket, as
   * with the AWS SDKs).
   */
  private clockOffset = 0;

  constructor(private readonly config: S3ClientConfig) {
    this.url = new URL(config.endpoint);
    if (this.url.protocol !== 'http:' && this.url.protocol !== 'https:') {
      throw new Error(`S3 endpoint must be http:// or https://, got ${this.url.protocol}`);
    }
    this.agent = new (this.url.protocol === 'https:' ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: 50 });
    this.basePath = this.url.pathname.replace(/\/+$/, '');
    this.maxAttempts = config.maxAttempts ?? 3;
  }

  /** Sends a request (retried when that is safe) and reads its answer; an error answer throws S3Error. */
  async send(r: S3Request): Promise<S3Response> {
    return this.retrying(r, async () => {
      const res = await this.attempt(r);
      const body = await readBody(res, r.signal);
      if (res.statusCode === undefined || res.statusCode >= 300) throw errorOf(res.statusCode ?? 0, res.headers, body);
      // CompleteMultipartUpload may answer 200 and fail in its document.
      if (/^\s*(<\?xml[^>]*\?>)?\s*<Error>/.test(body)) throw errorOf(500, res.headers, body);
      return { status: res.statusCode, headers: res.headers, body };
    });
  }

  /**
   * Sends a request and returns its answer's body as a stream (GetObject). Retries happen before
   * the answer starts; the stream then fails on a silent socket or when `signal` aborts.
   */
  async open(r: S3Request): Promise<{ readonly headers: IncomingHttpHeaders; readonly stream: IncomingMessage }> {
    return this.retrying(r, async () => {
      const res = await this.attempt(r);
      const status = res.statusCode ?? 0;
      if (status >= 300) throw errorOf(status, res.headers, await readBody(res, r.signal));
      destroyOnAbort(res, r.signal);
      return { headers: res.headers, stream: res };
    });
  }

  /** Closes the idle sockets. */
  destroy(): void {
    this.agent.destroy();
  }

  private async retrying<T>(r: S3Request, once: () => Promise<T>): Promise<T> {
    const { silence } = this.config;
    const since = silence?.silentSince(this.url.origin);
    if (since !== undefined) throw new EndpointSilent(this.url.origin, since);
    for (let attempt = 1; ; attempt++) {
      try {
        return await once();
      } catch (err) {
        if (err instanceof S3Error && CLOCK_SKEW_CODES.has(err.Code) && err.serverTime !== undefined) {
          const offset = err.serverTime - Date.now();
          // Signed again at once with the server's time, unless the offset was known already.
          if (attempt < this.maxAttempts && Math.abs(offset - this.clockOffset) > 60_000) {
            this.clockOffset = offset;
            continue;
          }
        }
        if (attempt >= this.maxAttempts || r.signal?.aborted || !isRetried(err)) {
          if (gotNoAnswer(err)) silence?.mark(this.url.origin);
          throw err;
        }
        // Full jitter over 100 ms · 2^attempt (the AWS SDKs' standard retry).
        await pause(Math.random() * 100 * 2 ** attempt, r.signal);
      }
    }
  }

  /** One attempt: resolves with the answer once its headers are in. */
  private attempt(r: S3Request): Promise<IncomingMessage> {
    const { config } = this;
    const path = `${this.basePath}/${r.bucket}${r.key === undefined ? '' : `/${uriEncode(r.key).replace(/%2F/g, '/')}`}`;
    const query = Object.entries(r.query ?? {}).filter((e): e is [string, string] => e[1] !== undefined);
    const search = query.map(([k, v]) => (v === '' ? uriEncode(k) : `${uriEncode(k)}=${uriEncode(v)}`)).join('&');
    const headers: Record<string, string> = { host: this.url.host, 'x-amz-date': amzDate(new Date(Date.now() + this.clockOffset)) };
    for (const [name, value] of Object.entries(r.headers ?? {})) if (value !== undefined) headers[name.toLowerCase()] = value;
    const made = typeof r.body === 'function' ? r.body() : r.body;
    const stream = made === undefined || typeof made === 'string' || Buffer.isBuffer(made) ? undefined : made;
    const bytes = typeof made === 'string' ? Buffer.from(made) : Buffer.isBuffer(made) ? made : undefined;
    if (stream) {
      if (r.contentLength === undefined) throw new Error('a stream body needs its content length');
      headers['x-amz-content-sha256'] = UNSIGNED;
    } else {
      headers['x-amz-content-sha256'] = bytes && bytes.length > 0 ? sha256Hex(bytes) : EMPTY_SHA256;
    }
    const auth = authorization({
      method: r.method,
      path: path || '/',
      query: query.map(([k, v]) => [k, v] as const),
      headers,
      accessKeyId: config.accessKeyId,
      secretAccessKey: config.secretAccessKey,
      region: config.region,
    });
    const length = stream ? r.contentLength : (bytes?.length ?? 0);
    const sent: Record<string, string | number> = { ...headers, authorization: auth };
    if (length !== undefined && (length > 0 || r.method === 'PUT' || r.method === 'POST')) sent['content-length'] = length;

    return new Promise((resolve, reject) => {
      const signal = r.signal;
      if (signal?.aborted) {
        stream?.destroy();
        reject(new RequestAborted(signal.reason));
        return;
      }
      const transport = this.url.protocol === 'https:' ? https : http;
      const req = transport.request({
        agent: this.agent,
        protocol: this.url.protocol,
        hostname: this.url.hostname,
        port: this.url.port || undefined,
        method: r.method,
        path: `${path || '/'}${search ? `?${search}` : ''}`,
        headers: sent,
      });
      let done = false;
      const fail = (err: unknown) => {
        if (done) return;
        done = true;
        signal?.removeEventListener('abort', onAbort);
        stream?.destroy();
        req.destroy();
        reject(err);
      };
      const onAbort = () => fail(new RequestAborted(signal?.reason));
      signal?.addEventListener('abort', onAbort, { once: true });
      req.setTimeout(config.socketTimeoutMs, () => {
        req.destroy(new RequestTimeout(`connection timed out after ${config.socketTimeoutMs} ms without data`));
      });
      req.once('socket', (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(() => {
          req.destroy(new RequestTimeout(`could not establish a connection within ${config.connectTimeoutMs} ms`));
        }, config.connectTimeoutMs);
        socket.once(this.url.protocol === 'https:' ? 'secureConnect' : 'connect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      req.on('error', fail);
      req.once('response', (res) => {
        if (done) {
          res.destroy();
          return;
        }
        done = true;
        signal?.removeEventListener('abort', onAbort);
        // An early answer (an error before the whole body was read): stop sending, and drop the
        // connection once the answer is read (it cannot carry another request).
        if (stream && !stream.readableEnded) {
          stream.unpipe(req);
          stream.destroy();
          res.once('end', () => req.destroy());
        }
        resolve(res);
      });
      if (stream) {
        stream.once('error', fail);
        stream.on('data', (c: Buffer) => paceGc(c.length));
        stream.pipe(req);
      } else {
        req.end(bytes);
      }
    });
  }
}

/** The whole answer as text (S3 documents are small); fails when `signal` aborts or the socket does. */
function readBody(res: IncomingMessage, signal: AbortSignal | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    destroyOnAbort(res, signal);
    res.on('data', (c: Buffer) => chunks.push(c));
    res.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.once('error', reject);
    res.once('close', () => {
      if (!res.complete) reject(new Error('socket hang up: the answer was cut short'));
    });
  });
}

/** Destroys an answer with RequestAborted when `signal` aborts before the answer closes. */
function destroyOnAbort(res: IncomingMessage, signal: AbortSignal | undefined): void {
  if (!signal) return;
  const onAbort = () => res.destroy(new RequestAborted(signal.reason));
  if (signal.aborted) {
    onAbort();
    return;
  }
  signal.addEventListener('abort', onAbort, { once: true });
  res.once('close', () => signal.removeEventListener('abort', onAbort));
}

// --- The XML of S3's documents: flat elements with text, no attributes read, no namespaces needed. ---

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** Text with XML's entities replaced. */
export function xmlDecode(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|lt|gt|amp|quot|apos);/gi, (_, e: string) => {
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? Number.parseInt(e.slice(2), 16) : Number(e.slice(1)));
    return ENTITIES[e.toLowerCase()] ?? '';
  });
}

/** Text safe inside an XML element. */
export function xmlEscape(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&${({ '<': 'lt', '>': 'gt', '&': 'amp', '"': 'quot', "'": 'apos' } as const)[c as '<']};`);
}

/** The inner XML of every `<tag>` element (not nested in itself), in document order. */
export function xmlBlocks(xml: string, tag: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`<${tag}(?:\\s[^>]*)?(?:/>|>([\\s\\S]*?)</${tag}>)`, 'g');
  for (const m of xml.matchAll(re)) out.push(m[1] ?? '');
  return out;
}

/** The decoded text of the first `<tag>` element, or undefined. */
export function xmlText(xml: string, tag: string): string | undefined {
  const block = xmlBlocks(xml, tag)[0];
  return block === undefined ? undefined : xmlDecode(block.trim());
}
