import { Redactor, passwordOfUrl } from '../logging/redact.js';
import { type Settings, variables } from './schema.js';

/** Variables whose value is a URL that may hold a password. */
const URLS_WITH_PASSWORDS = ['DATABASE_URL', 'VERIFY_DATABASE_URL', 'NOTIFY_SMTP_URL'] as const;

/** The secret values of parsed settings: every variable the schema marks `secret`, and the passwords of the URLs. */
function secretsOf(settings: Settings): string[] {
  const out: string[] = [];
  for (const spec of variables) {
    const value = settings[spec.name];
    if ('secret' in spec && spec.secret && typeof value === 'string' && value) out.push(value);
  }
  for (const name of URLS_WITH_PASSWORDS) {
    const password = passwordOfUrl(settings[name]);
    if (password) out.push(password);
  }
  return out;
}

/** A Redactor knowing the secrets of every settings given, and of `more` (the secret keys of pgbak.yaml's targets). */
export function redactorOf(all: readonly Settings[], more: readonly string[] = []): Redactor {
  return new Redactor([...all.flatMap(secretsOf), ...more.filter(Boolean)]);
}
