import { Redactor } from '../logging/redact.js';

/**
 * What the CLI shows (rendered errors, hints, `--json` documents) passes through the redactor of
 * the configuration it loaded: URL credentials and every configured secret value (a storage key,
 * an SMTP password) become `***`, also where an error message quotes one. Before a configuration is
 * loaded (or when loading failed) only the patterns apply.
 */
let current = new Redactor();

/** The command loaded its configuration: redact its secrets from now on. */
export function useRedactor(redactor: Redactor): void {
  current = redactor;
}

/** `text` as the CLI may show it. */
export function shown(text: string): string {
  return current.redact(text);
}

/** A value for `--json`, deep-redacted. */
export function shownValue<T>(value: T): T {
  return current.redactValue(value);
}
