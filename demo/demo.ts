/**
 * `npm run demo`: the main job with no configuration. Starts a throwaway PostgreSQL cluster
 * with a small sample database, backs it up with pgbak into ./backups/db, prints what it made
 * and how to restore it, then stops the cluster.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { psql, startCluster } from '../test/helpers/postgres-cluster.js';

const root = resolve(import.meta.dirname, '..');
const say = (text: string) => process.stdout.write(text + '\n');

const cluster = await startCluster({ log: (m) => say(`• ${m}`) });
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
  say(`• sample database "${db}" created (12 boats, 20 000 bookings)\n`);

  const env = { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: cluster.url(db) };
  say('$ ./scripts/backup-db.sh --no-upload   (DATABASE_URL points at the throwaway cluster)\n');
  const run = spawnSync(join(root, 'scripts', 'backup-db.sh'), ['--no-upload'], { cwd: root, env, stdio: 'inherit' });
  if (run.status !== 0) throw new Error(`pgbak exited with ${run.status}`);

  const dir = join(root, 'backups', 'db');
  const made = readdirSync(dir)
    .filter((f) => f.startsWith(`${db}_`))
    .sort()
    .slice(-3);
  say('\nWhat it made (newest backup):');
  for (const f of made) say(`  ${relative(root, join(dir, f)).padEnd(58)} ${statSync(join(dir, f)).size} bytes`);
  const manifestFile = made.find((f) => f.endsWith('.manifest.json'));
  const manifest = manifestFile
    ? (JSON.parse(readFileSync(join(dir, manifestFile), 'utf8')) as { artifact: { key: string; sha256: string } })
    : undefined;
  if (manifest) {
    say(`\nThe manifest (written last) vouches for ${manifest.artifact.key}: sha256 ${manifest.artifact.sha256}`);
    say('\nRestore it, as in the guide (into an existing database):');
    say(
      `  pg_restore --host=localhost --port=5432 --username=user --dbname=${db} --clean --if-exists \\\n      backups/db/${manifest.artifact.key}`,
    );
    say('or with pgbak (checks size and sha256 first, can create the database):');
    say(`  ./bin/pgbak restore ${manifestFile!.replace('.manifest.json', '')} --target ${db}_copy --create`);
  }
  say('\nNext: set STORAGE_ACCESS_KEY / STORAGE_SECRET_KEY to upload to MinIO, GPG_RECIPIENT to encrypt; see README.md.');
} finally {
  await cluster.stop();
  say('• throwaway cluster stopped');
}
