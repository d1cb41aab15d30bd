/**
 * `npm run demo`: the whole cycle with no configuration, in a throwaway PostgreSQL cluster with a
 * small sample database: backup, list, verify with a restore test, restore into a new database
 * (with its RTO). Everything is written into a temporary BACKUP_DIR, never into ./backups.
 *
 * Every command is printed as it is run, with the variables it needs, and run exactly as printed
 * (through `sh -c`, from the repository root). With `--wait` (the default on a terminal) the
 * cluster stays up at the end, and the commands printed then work as printed until you press
 * Enter; after that the cluster and the temporary directory are removed.
 *
 * dist/ is rebuilt first only when a file under src/ is newer than it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { psql, startCluster } from '../test/helpers/postgres-cluster.js';

const root = resolve(import.meta.dirname, '..');
const say = (text: string) => process.stdout.write(text + '\n');
const wait = process.argv.includes('--wait') || (process.stdin.isTTY === true && !process.argv.includes('--no-wait'));

/** The newest modification time of any file under `dir` (0 when it does not exist). */
function newestMtime(dir: string): number {
  let newest = 0;
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

function buildIfStale(): void {
  const built = statSync(join(root, 'dist', 'index.js'), { throwIfNoEntry: false })?.mtimeMs ?? 0;
  if (built >= newestMtime(join(root, 'src'))) return;
  say('• dist/ is older than src/: npm run build');
  const b = spawnSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
  if (b.status !== 0) throw new Error(`npm run build exited with ${b.status}`);
}

buildIfStale();
const work = mkdtempSync(join(tmpdir(), 'pgbak-demo-'));
const backupDir = join(work, 'backups');
const cluster = await startCluster({ log: (m) => say(`• ${m}`) });
let failed = false;
try {
  const db = 'sweet_narcisse';
  await psql(cluster, 'postgres', `CREATE DATABASE ${db}`);
  await psql(
    cluster,
    db,
    `CREATE TABLE boats (id serial PRIMARY KEY, name text NOT NULL, seats int NOT NULL);
     CREATE TABLE bookings (id bigserial PRIMARY KEY, boat_id int REFERENCES boats(id), customer text, at timestamptz, price numeric(8,2), extras jsonb);
     INSERT INTO boats (name, seats) SELECT 'Narcisse ' || g, 8 + g % 5 FROM generate_series(1, 12) g;
     INSERT INTO bookings (boat_id, customer, at, price, extras)
       SELECT 1 + g % 12, 'guest ' || g, now() - g * interval '37 minutes', 20 + (g % 9) * 2.5, jsonb_build_object('audio_guide', g % 3 = 0)
       FROM generate_series(1, 20000) g;`,
  );
  say(`• sample database "${db}" created (12 boats, 20 000 bookings)`);
  say(`• backups go to ${backupDir} (temporary; ./backups is not touched)\n`);

  // What every command needs, given on its own line so it can be pasted as printed. LOG_FILE= (no
  // log file) and --env-file /dev/null (not the repository's ./.env) keep it self-contained.
  const vars = `DATABASE_URL=${cluster.url(db)} BACKUP_DIR=${backupDir} LOG_FILE=`;
  const command = (args: string) => `${vars} ./bin/pgbak ${args} --env-file /dev/null`;
  const run = (what: string, args: string): string => {
    const line = command(args);
    say(`── ${what}\n$ ${line}`);
    const r = spawnSync('sh', ['-c', line], {
      cwd: root,
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
    });
    process.stdout.write(r.stdout);
    say('');
    if (r.status !== 0) throw new Error(`${what}: pgbak exited with ${r.status}`);
    return r.stdout;
  };

  run('1. back it up (local copy only: no bucket configured)', 'backup --no-upload');
  run('2. list the backups', 'list --from local');
  run('3. prove it restores: restore into a scratch database, compare row counts, drop it', 'verify --latest --restore-test');
  const restored = run(`4. restore it into a new database, ${db}_copy`, `restore --latest --from local --target ${db}_copy --create`);
  const rto = /RTO [^\n]*/.exec(restored)?.[0];
  const rows = (await psql(cluster, `${db}_copy`, 'SELECT count(*) FROM bookings')).trim();
  say(`• ${db}_copy has ${rows} bookings, as the original${rto ? `; ${rto}` : ''}`);

  if (wait) {
    say('\nThe throwaway cluster stays up until you press Enter. Try, from this directory:');
    say(`  ${command('status')}`);
    say(`  ${command(`restore --latest --from local --target ${db}_copy2 --create`)}`);
    say('Then press Enter to stop the cluster and remove the temporary backups.');
    await new Promise<void>((done) => {
      const rl = createInterface({ input: process.stdin });
      const finish = () => {
        rl.close();
        process.off('SIGINT', finish);
        done();
      };
      rl.once('line', finish);
      rl.once('close', finish);
      process.once('SIGINT', finish);
    });
  }
  say('\nNext: STORAGE_* to upload to MinIO/S3 (`pgbak init` creates the bucket), GPG_RECIPIENT to encrypt; see README.md.');
} catch (err) {
  failed = true;
  say(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
} finally {
  await cluster.stop();
  rmSync(work, { recursive: true, force: true });
  say('• throwaway cluster stopped, temporary backups removed');
}
process.exitCode = failed ? 1 : 0;
