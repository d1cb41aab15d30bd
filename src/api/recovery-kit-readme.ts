import { manifestKey } from '../catalog/backup-name.js';
import { dumpBytes, type Manifest } from '../catalog/manifest.js';
import type { S3Settings } from '../config/job.js';

/**
 * The text of a recovery kit (see recovery-kit.ts): a pure function of what was found, so the
 * README's commands can be read and tested without a bucket. Every `sh` block is meant to be run
 * as written, in order, from the kit's directory; the only things the reader supplies are the
 * placeholders listed at the top (environment variables, never values written here).
 */

/** One job's newest good backup, as the kit describes it. */
export interface KitJob {
  readonly job: string;
  readonly database: string;
  readonly manifest: Manifest;
  readonly manifestSha256: string;
  readonly manifestSize: number;
  /** The bucket holding a good copy (fetched with aws / mc); undefined: BACKUP_DIR only. */
  readonly remote: S3Settings | undefined;
  /** BACKUP_DIR when it holds a good copy. */
  readonly localDir: string | undefined;
  /**
   * The further bucket targets holding a good copy (pgbak.yaml's targets, STORAGE_2_*): fetched from
   * there when the first bucket is lost. `sameManifest`: its manifest is byte for byte the one in
   * SHA256SUMS (not so when it records its own Object Lock).
   */
  readonly others?: readonly { readonly name: string; readonly s3: S3Settings; readonly sameManifest: boolean }[] | undefined;
  /** The backed-up server's URL, password redacted. */
  readonly serverUrl: string;
  /** AGE_IDENTITY_FILE on the host that wrote the kit. */
  readonly ageIdentityFile: string | undefined;
  /** The GnuPG keyring pgbak uses on that host. */
  readonly gpgKeyring: string;
}

export interface KitText {
  readonly jobs: readonly KitJob[];
  readonly missing: readonly { readonly job: string; readonly database: string; readonly reason: string }[];
  readonly writtenAt: string;
  readonly host: string;
  readonly version: string;
}

/** Quote for a POSIX shell: plain words stay as they are, anything else in single quotes. */
export function shq(s: string): string {
  return /^[A-Za-z0-9_./:@%+=,~-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

const fileOf = (key: string) => key.slice(key.lastIndexOf('/') + 1);

/** The files of a job in SHA256SUMS: `<job>/<file>` with their sha256 and size (a directory backup's as `<job>/<name>.dir/<file>`). */
export function kitFiles(k: KitJob): { path: string; sha256: string; size: number }[] {
  const m = k.manifest;
  const at = (key: string) => `${k.job}/${fileOf(key)}`;
  const dump = m.directory
    ? m.directory.files.map((f) => ({ path: `${k.job}/${f.key}`, sha256: f.sha256, size: f.size }))
    : [{ path: at(m.artifact.key), sha256: m.artifact.sha256, size: m.artifact.size }];
  return [
    ...dump,
    ...(m.globals ? [{ path: at(m.globals.key), sha256: m.globals.sha256, size: m.globals.size }] : []),
    { path: at(manifestKey(m.name)), sha256: k.manifestSha256, size: k.manifestSize },
  ];
}

/** SHA256SUMS: `<sha256>  <job>/<file>` lines, as `sha256sum -c` reads them. */
export function renderSha256Sums(jobs: readonly KitJob[]): string {
  return jobs.flatMap((k) => kitFiles(k).map((f) => `${f.sha256}  ${f.path}\n`)).join('');
}

/**
 * The command that turns a stored file into its plain bytes on stdout: decrypt, then decompress.
 * `file` is a shell word as written (quoted already, or `"$f"`); empty: nothing to undo.
 */
function plainCommand(k: KitJob, file: string, decompress: boolean): string {
  const enc = k.manifest.encryption;
  const steps: string[] = [];
  if (enc?.method === 'age') steps.push(`age -d -i "$AGE_IDENTITY_FILE" ${file}`);
  else if (enc?.method === 'gpg') steps.push(`gpg --decrypt ${file}`);
  const c = k.manifest.compression;
  const stream = decompress && c.by === 'stream';
  if (stream) {
    const tool = c.method === 'lz4' ? 'lz4 -d -c' : 'zstd -d -c';
    steps.push(steps.length ? tool : `${tool} ${file}`);
  }
  return steps.join(' | ');
}

/** What pgbak appended to each file of a directory backup (`.zst`/`.lz4`, then `.gpg`/`.age`). */
function storedSuffix(m: Manifest): string {
  const comp = m.compression.by === 'stream' ? (m.compression.method === 'lz4' ? '.lz4' : '.zst') : '';
  return `${comp}${m.encryption ? `.${m.encryption.method}` : ''}`;
}

/** The copy commands of one bucket: each file with `aws s3 cp`, a directory backup's `<name>.dir/` at once (--recursive). */
function awsCopies(s: S3Settings, keys: readonly string[], dir: string): string[] {
  const aws = `aws s3 cp --endpoint-url ${shq(s.endpoint)} --region ${shq(s.region)}`;
  return keys.map((key) =>
    key.endsWith('/')
      ? `${aws} --recursive --only-show-errors ${shq(`s3://${s.bucket}/${s.prefix}${key}`)} ${shq(`${dir}${key}`)}`
      : `${aws} ${shq(`s3://${s.bucket}/${s.prefix}${key}`)} ${shq(dir)}`,
  );
}

function fetchBlock(k: KitJob): { main: string[]; alternatives: string[] } {
  const m = k.manifest;
  // A directory backup: its `<name>.dir/` as a whole (every file the manifest lists is under it).
  const dump = m.directory ? `${m.name}.dir/` : m.artifact.key;
  const keys = [dump, ...(m.globals ? [m.globals.key] : []), manifestKey(m.name)];
  const dir = `${k.job}/`;
  const main = ['set -euo pipefail', `mkdir -p ${shq(k.job)}`];
  const alternatives: string[] = [];
  if (k.remote) {
    const s = k.remote;
    main.push(...awsCopies(s, keys, dir));
    alternatives.push(
      `# with MinIO's client instead of aws:`,
      `mc alias set pgbak-recovery ${shq(s.endpoint)} "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"`,
      ...keys.map((key) =>
        key.endsWith('/')
          ? `mc cp --recursive ${shq(`pgbak-recovery/${s.bucket}/${s.prefix}${key}`)} ${shq(`${dir}${key}`)}`
          : `mc cp ${shq(`pgbak-recovery/${s.bucket}/${s.prefix}${key}`)} ${shq(dir)}`,
      ),
    );
  }
  for (const o of k.others ?? []) {
    alternatives.push(
      `# or from target ${o.name} (the off-site copy, when the first bucket is lost), with that bucket's key in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY:`,
      ...awsCopies(o.s3, o.sameManifest ? keys : keys.slice(0, -1), dir),
      ...(o.sameManifest ? [] : [`# (its manifest records its own Object Lock: check with \`sha256sum -c --ignore-missing SHA256SUMS\`)`]),
    );
  }
  const localCopy = keys.map((key) =>
    key.endsWith('/') ? `cp -R ${shq(`${k.localDir}/${key.slice(0, -1)}`)} ${shq(dir)}` : `cp ${shq(`${k.localDir}/${key}`)} ${shq(dir)}`,
  );
  if (k.localDir && k.remote) alternatives.push(`# or, if the backup host (${k.localDir}) is still there:`, ...localCopy);
  else if (k.localDir) main.push(...localCopy);
  return { main, alternatives };
}

function keySection(k: KitJob): string[] {
  const enc = k.manifest.encryption;
  if (!enc) return [`- **${k.job}**: not encrypted.`];
  if (enc.method === 'age') {
    return [
      `- **${k.job}**: age, to ${enc.recipients.length} recipient(s) — any one of their identities decrypts:`,
      ...enc.recipients.map((r) => `  - \`${r}\``),
      `  - the identity is expected in \`$AGE_IDENTITY_FILE\`${k.ageIdentityFile ? ` (on ${'the backup host'} it is \`${k.ageIdentityFile}\`)` : ''}, or wherever your offline break-glass key is kept. \`age-keygen -y FILE\` prints an identity's public key: it must be one of the above.`,
    ];
  }
  return [
    `- **${k.job}**: gpg, to \`${enc.recipient}\`, key fingerprint \`${enc.fingerprint}\`.`,
    `  - the secret key is expected in the GnuPG keyring (\`GNUPGHOME\`, else \`~/.gnupg\`; on the backup host: ${k.gpgKeyring}). On a new machine: \`gpg --import private-key.asc\`, then \`gpg --list-secret-keys ${enc.fingerprint}\`.`,
  ];
}

function jobSection(k: KitJob): string[] {
  const m = k.manifest;
  const { main, alternatives } = fetchBlock(k);
  const art = `${k.job}/${fileOf(m.artifact.key)}`;
  const glob = m.globals ? `${k.job}/${fileOf(m.globals.key)}` : undefined;
  const restore = plainCommand(k, shq(art), true);
  const out: string[] = [
    `## Job ${k.job}: database ${k.database}`,
    '',
    `Newest good backup: **${m.name}**, started ${m.startedAt} on ${m.host}, PostgreSQL ${m.server.version}` +
      `${m.server.systemIdentifier ? ` (system identifier ${m.server.systemIdentifier})` : ''}, dump by pg_dump ${m.pgDump.version}; ` +
      `${dumpBytes(m)} bytes, compression ${m.compression.method}:${m.compression.level} (${m.compression.by === 'stream' ? 'a stream layer around the archive' : 'inside the archive'}), ` +
      `encryption ${m.encryption ? m.encryption.method : 'none'}. The backed-up server was \`${k.serverUrl}\`.`,
    '',
    ...(m.directory
      ? [
          `A **directory-format** dump (BACKUP_JOBS=${m.directory.jobs}: \`pg_dump --format=directory --jobs=${m.directory.jobs}\`): ` +
            `${m.directory.files.length} files under \`${m.name}.dir/\`, each stored${storedSuffix(m) ? ` with its own \`${storedSuffix(m)}\` layer` : ' as pg_dump wrote it'} and listed in the manifest and SHA256SUMS. ` +
            'Every file is needed: fetch the whole directory, check each, undo each, then `pg_restore --jobs` the directory.',
          '',
        ]
      : []),
    '### 1. Fetch',
    '',
    '```sh',
    ...main,
    '```',
    '',
  ];
  if (alternatives.length) out.push('Alternatives (run instead of the block above):', '', '```text', ...alternatives, '```', '');
  out.push(
    '### 2. Check',
    '',
    "Each file against the checksum pgbak recorded when it stored it (the manifest's `sha256`):",
    '',
    '```sh',
    `grep -F ${shq(`  ${k.job}/`)} SHA256SUMS | sha256sum -c -`,
    '```',
    '',
  );
  if (glob) {
    out.push(
      '### 3. Roles and tablespaces (the globals)',
      '',
      'Restore these first, so the tables get their owners. Errors such as `role "…" already exists` are harmless on a server that has them.',
      '',
      '```sh',
      `${m.encryption ? `${plainCommand(k, shq(glob), false)} | ` : ''}psql -X -q -d postgres${m.encryption ? '' : ` -f ${shq(glob)}`}`,
      '```',
      '',
    );
  }
  out.push(
    `### ${glob ? 4 : 3}. The database`,
    '',
    `Restores into \`$TARGET_DB\`, by default \`${k.database}\`; the database must not exist yet (set \`TARGET_DB\` to restore beside it).`,
    '',
    '```sh',
    ...targetLine(k.database),
    'createdb "$TARGET_DB"',
    ...(m.directory
      ? directoryRestore(k)
      : [restore ? `${restore} | pg_restore --dbname="$TARGET_DB"` : `pg_restore --dbname="$TARGET_DB" ${shq(art)}`]),
    '```',
    '',
  );
  if (m.tables?.length) {
    const shown = m.tables.slice(0, 20);
    out.push(
      `Rows per table when the backup was taken (compare with \`SELECT count(*) FROM …\`)${m.tables.length > shown.length ? `, the first ${shown.length} of ${m.tables.length}` : ''}:`,
      '',
      '| table | rows |',
      '|---|---|',
      ...shown.map((t) => `| ${t.schema}.${t.table} | ${t.rows} |`),
      '',
    );
  }
  return out;
}

/**
 * A directory backup (BACKUP_JOBS): every file decrypted (and its stream layer undone) into
 * `<job>/<name>.plain/` under its pg_dump name, then `pg_restore --jobs N` of that directory;
 * the fetched directory itself when pgbak added no layer.
 */
function directoryRestore(k: KitJob): string[] {
  const m = k.manifest;
  const jobs = m.directory!.jobs;
  const fetched = `${k.job}/${m.name}.dir`;
  const suffix = storedSuffix(m);
  if (!suffix) return [`pg_restore --jobs=${jobs} --dbname="$TARGET_DB" ${shq(fetched)}`];
  const plain = `${k.job}/${m.name}.plain`;
  return [
    `mkdir -p ${shq(plain)}`,
    `for f in ${shq(fetched)}/*${suffix}; do b="\${f##*/}"; ${plainCommand(k, '"$f"', true)} > ${shq(plain)}/"\${b%${suffix}}"; done`,
    `pg_restore --jobs=${jobs} --dbname="$TARGET_DB" ${shq(plain)}`,
  ];
}

/** `TARGET_DB` defaulting to the database's name (quoted for the shell when it must be). */
function targetLine(database: string): string[] {
  if (/^[A-Za-z0-9_.-]+$/.test(database)) return [`TARGET_DB="\${TARGET_DB:-${database}}"`];
  return [`if [ -z "\${TARGET_DB:-}" ]; then TARGET_DB=${shq(database)}; fi`];
}

/** An endpoint only the backup host can reach (localhost): the reader must use the server's real address. */
function isLoopback(endpoint: string): boolean {
  try {
    const h = new URL(endpoint).hostname;
    return h === 'localhost' || h.startsWith('127.') || h === '[::1]';
  } catch {
    return false;
  }
}

/** The kit's README.md. */
export function renderKitReadme(t: KitText): string {
  const encs = new Set(t.jobs.map((k) => k.manifest.encryption?.method ?? 'none'));
  const streams = new Set(t.jobs.filter((k) => k.manifest.compression.by === 'stream').map((k) => k.manifest.compression.method));
  const anyRemote = t.jobs.some((k) => k.remote);
  const packages = [
    ...(anyRemote ? ['awscli'] : []),
    'coreutils',
    ...(encs.has('age') ? ['age'] : []),
    ...(encs.has('gpg') ? ['gnupg'] : []),
    ...(streams.has('zstd') ? ['zstd'] : []),
    ...(streams.has('lz4') ? ['lz4'] : []),
    'postgresql-client',
  ];
  const placeholders: string[] = [
    ...(anyRemote
      ? [
          "| `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` | a key that may read the bucket (the backup host's `STORAGE_ACCESS_KEY` / `STORAGE_SECRET_KEY`, or a read-only key kept for this) |",
        ]
      : []),
    "| `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD` | the PostgreSQL server to restore into (libpq's own variables; a superuser, so the roles can be created) |",
    ...(encs.has('age') ? ['| `AGE_IDENTITY_FILE` | the path of an age identity file of one of the recipients below |'] : []),
    ...(encs.has('gpg') ? ['| `GNUPGHOME` | the GnuPG home holding the secret key below (unset: `~/.gnupg`) |'] : []),
    '| `TARGET_DB` | optional: the database to restore into (default: the original name) |',
  ];
  const lines: string[] = [
    '# Recovery kit',
    '',
    `Written ${t.writtenAt} by pgbak ${t.version} on ${t.host}. It restores the newest good backup of ` +
      `${t.jobs.length === 1 ? 'the job' : `each of ${t.jobs.length} jobs`} with standard tools only — no pgbak needed. ` +
      'It holds no secret: keys and passwords are placeholders you set (below).',
    '',
    '## What you need',
    '',
    `- Debian/Ubuntu packages: \`apt install ${packages.join(' ')}\``,
    '- Run the commands in **bash**, from this directory (beside `SHA256SUMS`), one job at a time: the `sh` blocks of a job in order. `text` blocks are alternatives.',
    '- Keep copies of this kit away from the backup host (another machine, a password manager, paper), and write a new one (`pgbak recovery-kit DIR`) after changing keys, buckets or jobs.',
    ...(t.jobs.some((k) => k.remote && isLoopback(k.remote.endpoint))
      ? [
          "- The bucket endpoint below is `localhost` as the backup host saw it: from another machine, use the S3 server's real address in the fetch commands.",
        ]
      : []),
    '- Set these first (`export NAME=…`); nothing else in the commands needs editing:',
    '',
    '| placeholder | what |',
    '|---|---|',
    ...placeholders,
    '',
    '## Keys',
    '',
    ...t.jobs.flatMap(keySection),
    '',
  ];
  if (t.missing.length) {
    lines.push('## Jobs without a good backup', '', ...t.missing.map((m) => `- **${m.job}** (database ${m.database}): ${m.reason}`), '');
  }
  for (const k of t.jobs) lines.push(...jobSection(k));
  lines.push(
    '## Files',
    '',
    '`SHA256SUMS` lists every file above as `<job>/<file>`, in the format of `sha256sum -c`. A backup is complete only with its `.manifest.json`; `.dump` is a pg_dump custom-format archive, `<name>.dir/` the files of a pg_dump directory-format archive (`toc.dat` and one `.dat` file a table), `.zst` / `.lz4` a compression layer, `.age` / `.gpg` encryption, `.globals.sql` the output of `pg_dumpall --globals-only`.',
    '',
  );
  return lines.join('\n');
}
