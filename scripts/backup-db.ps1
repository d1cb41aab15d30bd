# The seed's Windows entry point, kept as written:
#   .\scripts\backup-db.ps1              full backup with upload
#   .\scripts\backup-db.ps1 -DryRun      show what would happen, change nothing
#   .\scripts\backup-db.ps1 -NoUpload    local backup only
#   .\scripts\backup-db.ps1 -NoEncrypt   unencrypted backup
# Runs from any working directory: it changes to the project directory (the parent of
# scripts\) so the relative defaults (.\backups\db, .\logs\backup-db.log, .\.env) land there,
# and exits with pgbak's own exit code. Needs Node.js 20+ on PATH.
[CmdletBinding()]
param(
    [switch]$DryRun,
    [switch]$NoUpload,
    [switch]$NoEncrypt
)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Set-Location -LiteralPath $root

# --max-semi-space-size=1 as in bin/pgbak's shebang: lower peak memory while the dump streams.
$pgbakArgs = @('--max-semi-space-size=1', (Join-Path $root 'bin/pgbak'), 'backup')
if ($DryRun)    { $pgbakArgs += '--dry-run' }
if ($NoUpload)  { $pgbakArgs += '--no-upload' }
if ($NoEncrypt) { $pgbakArgs += '--no-encrypt' }

& node @pgbakArgs
exit $LASTEXITCODE
