/**
 * The environment of every child pgbak starts (pg_dump, pg_dumpall, pg_restore, psql, zstd, lz4,
 * gpg): a small allow-list of the parent's variables plus what the stage passes on purpose.
 *
 * pgbak itself holds secrets in its environment (STORAGE_SECRET_KEY, DATABASE_URL with its
 * password, SMTP and webhook URLs, AWS_* of the host). A child has no use for them, and anything
 * in a child's environment can be read from /proc/<pid>/environ, lands in core dumps and is
 * inherited by whatever that child starts (pg_dump's Debian wrapper, gpg's agent). So children
 * get only what makes them work the same as from a shell:
 * - PATH, HOME (~/.pgpass, ~/.gnupg), USER, LOGNAME, locale (LANG, LANGUAGE, LC_*), TZ, TMPDIR;
 * - GNUPGHOME (the keyring pgbak checked the recipient in; `.env`'s value is exported by loadJobs,
 *   see config/child-dotenv.ts);
 * - libpq's PG* variables (PGHOST, PGSSLMODE, PGSERVICE, PGPASSFILE …, and PGCLUSTER for Debian's
 *   pg_wrapper), except PGPASSWORD: a password reaches a child only when its stage sets it (see
 *   postgres/connection.ts childConnection), and never pgbak's own PGBAK_* settings;
 * - KRB5CCNAME / KRB5_CONFIG, so GSSAPI (Kerberos) authentication keeps working for pg_dump.
 * Never STORAGE_*, AWS_*, DATABASE_URL, VERIFY_DATABASE_URL, NOTIFY_* or anything else.
 */
const ALLOWED_NAMES = new Set([
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'LANG',
  'LANGUAGE',
  'TZ',
  'TMPDIR',
  'GNUPGHOME',
  'KRB5CCNAME',
  'KRB5_CONFIG',
]);

/** Whether the parent's variable `name` may pass to a child. */
function isAllowedChildVariable(name: string): boolean {
  if (ALLOWED_NAMES.has(name) || name.startsWith('LC_')) return true;
  return name.startsWith('PG') && name !== 'PGPASSWORD' && !name.startsWith('PGBAK');
}

/**
 * The environment for a child: the allowed part of `parent` (default: process.env), then
 * `extra` (the stage's own variables, e.g. PGPASSWORD; `undefined` removes one).
 */
export function childEnv(
  extra: Readonly<Record<string, string | undefined>> = {},
  parent: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(parent)) {
    if (value !== undefined && isAllowedChildVariable(name)) env[name] = value;
  }
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}
