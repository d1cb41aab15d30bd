/**
 * Secrets never reach a log line, an error or `--dry-run` output. Two defences:
 * URLs with credentials are masked wherever they appear in a string, and every secret value
 * pgbak knows of (passwords, secret keys) is registered here and masked verbatim.
 */
const secrets = new Set<string>();

/** Register a secret value so that `redact` masks it anywhere it appears. Short values are ignored. */
export function registerSecret(value: string | undefined | null): void {
  if (value && value.length >= 4) {
    secrets.add(value);
    const encoded = encodeURIComponent(value);
    if (encoded !== value) secrets.add(encoded);
  }
}

const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/)([^\s/@:]*):([^\s/@]*)@/gi;
const PASSWORD_PARAMS = /((?:^|[?&\s])(?:password|sslpassword|secret|token)=)[^&\s]*/gi;

/** Mask credentials in any text. */
export function redact(text: string): string {
  let out = text.replace(URL_CREDENTIALS, (_m, scheme: string, user: string) => `${scheme}${user}:***@`);
  out = out.replace(PASSWORD_PARAMS, '$1***');
  for (const secret of secrets) {
    if (out.includes(secret)) out = out.split(secret).join('***');
  }
  return out;
}

/** A database URL for display: `postgresql://user:***@host:5432/db`. */
export function redactUrl(url: string): string {
  return redact(url);
}

/** Deep-redact a value meant for JSON output or logs. */
export function redactValue<T>(value: T): T {
  if (typeof value === 'string') return redact(value) as T;
  if (Array.isArray(value)) return value.map((v) => redactValue(v)) as T;
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = /secret|password|passphrase/i.test(k) && typeof v === 'string' && v ? '***' : redactValue(v);
    }
    return out as T;
  }
  return value;
}
