import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/** Credentials a {@link MailSink} requires (AUTH PLAIN/LOGIN without TLS); without them it takes mail from anyone. */
export interface MailSinkAuth {
  readonly user: string;
  readonly pass: string;
}

/** A real SMTP server on loopback (no TLS; AUTH only with `auth`) that keeps the raw messages it accepts. */
export class MailSink {
  readonly raw: Buffer[] = [];
  /** Every AUTH attempt, in order. */
  readonly logins: { username: string | null | undefined; password: string | null | undefined }[] = [];
  port = 0;
  private readonly server: SMTPServer;
  constructor(private readonly auth?: MailSinkAuth) {
    this.server = new SMTPServer({
      ...(auth
        ? { disabledCommands: ['STARTTLS'], allowInsecureAuth: true, authMethods: ['PLAIN', 'LOGIN'] }
        : { disabledCommands: ['STARTTLS', 'AUTH'], authOptional: true }),
      logger: false,
      onAuth: (login, _session, cb) => {
        this.logins.push({ username: login.username, password: login.password });
        if (auth && login.username === auth.user && login.password === auth.pass) cb(null, { user: login.username });
        else cb(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
      },
      onData: (stream, _session, cb) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          this.raw.push(Buffer.concat(chunks));
          cb();
        });
      },
    });
  }
  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.server.address() as AddressInfo).port;
    return this;
  }
  /** `smtp://127.0.0.1:<port>`, without credentials. */
  get url(): string {
    return `smtp://127.0.0.1:${this.port}`;
  }
  /** The URL with credentials (default: the ones the sink requires), percent-encoded. */
  urlWith(user = this.auth?.user ?? '', pass = this.auth?.pass ?? ''): string {
    return `smtp://${encodeURIComponent(user)}:${encodeURIComponent(pass)}@127.0.0.1:${this.port}`;
  }
  parsed(): Promise<ParsedMail[]> {
    return Promise.all(this.raw.map((b) => simpleParser(b)));
  }
  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

export interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly body: string;
}

/** A real HTTP server on loopback that records requests in arrival order and answers 200. */
export class HttpSink {
  readonly requests: ReceivedRequest[] = [];
  base = '';
  private readonly server: HttpServer = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      this.requests.push({ method: req.method ?? '', path: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('OK');
    });
  });
  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }
  /** Requests whose path starts with `prefix`, in arrival order. */
  under(prefix: string): ReceivedRequest[] {
    return this.requests.filter((r) => r.path.startsWith(prefix));
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** A loopback port with nothing listening (connections are refused). */
export async function closedPort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * Samples of a Prometheus text exposition, parsed independently of pgbak's own parser:
 * `name{a="x",b="y"} value` → { name, labels, value }. Throws on a line that is neither a
 * comment nor a sample.
 */
export function parseExposition(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of one sample, by metric name and labels that must match. */
export function sample(samples: ReturnType<typeof parseExposition>, name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}
