#!/usr/bin/env bash
# The seed's entry point, kept as written:
#   ./scripts/backup-db.sh              full backup with upload
#   ./scripts/backup-db.sh --dry-run    show what would happen, change nothing
#   ./scripts/backup-db.sh --no-upload  local backup only
#   ./scripts/backup-db.sh --no-encrypt unencrypted backup
# Any other pgbak backup flag is passed through (--json, --job NAME, --all, --set NAME=VALUE).
#
# It runs from any working directory: it changes to the project directory (the parent of
# scripts/), so the seed's relative defaults (./backups/db, ./logs/backup-db.log, ./.env)
# land there, and it exits with pgbak's own exit status (`pgbak --help` lists the codes).
set -euo pipefail
root="$(cd -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/.." && pwd)"
cd -- "$root"
exec "$root/bin/pgbak" backup "$@"
