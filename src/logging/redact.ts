/**
 * Secrets never reach a log line, an error or `--dry-run` output. Two defences:
 * URLs with credentials (and `password=` parameters) are masked wherever they appear in a string,
 * and every secret value the configuration holds (passwords, secret keys) is masked verbatim by
 * the {@link Redactor} that loadJobs returns and the logger, the renderer and the notifications use.
 */

const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/)([^\s/@:]*):([^\s/@]*)@/gi;
const PASSWORD_PARAMS = /((?:^|[?&\s])(?:password|sslpassword|secret|token)=)[^&\s]*/gi;
/** Keys whose string values are masked whole by `redactValue`. */
const SECRET_KEYS = /secret|password|passphrase/i;

function redactPatterns(text: string): string {
  return text.replace(URL_CREDENTIALS, (_m, scheme: string, user: string) => `${scheme}${user}:***@`).replace(PASSWORD_PARAMS, '$1***');
}

/** The decoded password of a URL, or undefined when it has none or is not a URL. */
export function passwordOfUrl(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const p = new URL(url).password;
    return p ? decodeURIComponent(p) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Masks credentials in text: URL credentials and `password=` parameters by pattern, and every
 * secret value added to it, verbatim and percent-encoded. One instance per loaded configuration,
 * handed out with the logger (`logger.redactor`).
 */
export class Redactor {
  private readonly secrets = new Set<string>();

  constructor(secrets: Iterable<string | undefined> = []) {
    for (const secret of secrets) this.add(secret);
  }

  /** Mask `secret` from now on. Values shorter than 4 characters are ignored (they would mask ordinary text). */
  add(secret: string | undefined | null): void {
    if (!secret || secret.length < 4) return;
    this.secrets.add(secret);
    const encoded = encodeURIComponent(secret);
    if (encoded !== secret) this.secrets.add(encoded);
  }

  /** A new Redactor knowing this one's secrets and `more`; this one is unchanged. */
  with(...more: (string | undefined)[]): Redactor {
    const copy = new Redactor(this.secrets);
    for (const secret of more) copy.add(secret);
    return copy;
  }

  /** `text` with URL credentials and every known secret replaced by `***`. */
  redact(text: string): string {
    let out = redactPatterns(text);
    for (const secret of this.secrets) {
      if (out.includes(secret)) out = out.split(secret).join('***');
    }
    return out;
  }

  /** Deep-redact a value meant for JSON output or logs: strings redacted, values of secret-named keys masked. */
  redactValue<T>(value: T): T {
    if (typeof value === 'string') return this.redact(value) as T;
    if (Array.isArray(value)) return value.map((v) => this.redactValue(v)) as T;
    if (value && typeof value === 'object' && !(value instanceof Date)) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        out[k] = SECRET_KEYS.test(k) && typeof v === 'string' && v ? '***' : this.redactValue(v);
      }
      return out as T;
    }
    return value;
  }
}

/** Knows no secret: masks by pattern only. */
const patternsOnly = new Redactor();

/**
 * Mask credentials in URLs (and `password=` parameters) in any text. Credentials in URLs only;
 * secrets known from the config are removed by the Redactor at the output (logger, renderer,
 * notifications).
 */
export function redact(text: string): string {
  return redactPatterns(text);
}

/**
 * Deep-redact a value meant for JSON output or logs, by pattern and secret-named keys only (see
 * {@link redact}); {@link Redactor.redactValue} also masks the configuration's secrets.
 */
export function redactValue<T>(value: T): T {
  return patternsOnly.redactValue(value);
}
