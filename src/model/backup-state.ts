/**
 * The state of a backup (or of one copy) as the catalog sees it. `foreign`: named like a backup,
 * but neither a manifest nor a run record says pgbak made it (the guide's own script, a manual
 * pg_dump): never deleted.
 */
export type BackupState = 'good' | 'incomplete' | 'corrupt' | 'foreign';
