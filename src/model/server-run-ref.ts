/**
 * The whole-server run (BACKUP_DATABASES) a database backup belongs to, as its manifest records
 * it: one run backs up every database of a server and stores the server's globals (roles,
 * tablespaces) ONCE, inside the backup of one of its databases; every other database's manifest
 * names that backup here. `restore --all-databases` reads it to restore globals first.
 */
export interface ServerRunRef {
  /** The id of the server run (the same in every manifest of the run). */
  readonly id: string;
  /** When the server run started (ISO). */
  readonly startedAt: string;
  /** The whole-server job (its name). */
  readonly job: string;
  /** The backup whose manifest holds the run's globals file (`<db>_YYYYMMDD_HHMMSS`); null: no globals this run. */
  readonly globalsIn: string | null;
}
