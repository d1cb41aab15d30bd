<#
.SYNOPSIS
  Registers the Windows scheduled task that runs backup-db.ps1 (next to this script) every
  6 hours: daily at 00:00, 06:00, 12:00 and 18:00, as SYSTEM, only when the network is available.

.DESCRIPTION
  Run from an elevated PowerShell:
      powershell -NoProfile -ExecutionPolicy Bypass -File scripts\register-task.ps1
  Running it again replaces the task (-Force), so it is safe to re-run after an update.
  Check:   Get-ScheduledTask -TaskName PgbakDbBackup | Get-ScheduledTaskInfo
  Run now: Start-ScheduledTask -TaskName PgbakDbBackup
  Remove:  Unregister-ScheduledTask -TaskName PgbakDbBackup -Confirm:$false
#>
[CmdletBinding()]
param(
    # Name of the task in Task Scheduler.
    [string]$TaskName = "PgbakDbBackup"
)
$ErrorActionPreference = "Stop"

# The backup script sits in the same folder as this one; the task starts in the folder above
# (the pgbak folder), where backup-db.ps1 finds its .env.
$Script = Join-Path $PSScriptRoot "backup-db.ps1"
if (-not (Test-Path -LiteralPath $Script)) { throw "backup script not found: $Script" }
$WorkDir = Split-Path -Parent $PSScriptRoot

# powershell.exe -File backup-db.ps1, without a profile or an execution-policy prompt in the way.
$Action = New-ScheduledTaskAction -Execute "powershell.exe" `
    -Argument "-NoProfile -NonInteractive -ExecutionPolicy Bypass -File `"$Script`"" `
    -WorkingDirectory $WorkDir

# One daily trigger per time, local time. (One command per line: the seed's snippet had a
# trailing comma after "-At 00:00", which made the next line part of -At's argument.)
$Triggers = @(
    New-ScheduledTaskTrigger -Daily -At "00:00"
    New-ScheduledTaskTrigger -Daily -At "06:00"
    New-ScheduledTaskTrigger -Daily -At "12:00"
    New-ScheduledTaskTrigger -Daily -At "18:00"
)

# Skip a run while offline; run a slot missed while the machine was off as soon as it can;
# never start a second copy while one is still running.
$Settings = New-ScheduledTaskSettingsSet -RunOnlyIfNetworkAvailable -StartWhenAvailable `
    -MultipleInstances IgnoreNew

# -Force replaces an existing task of the same name, so re-running this script is harmless.
Register-ScheduledTask -TaskName $TaskName -Description "pgbak: PostgreSQL backup every 6 hours" `
    -Action $Action -Trigger $Triggers -Settings $Settings -User "SYSTEM" -Force | Out-Null

Write-Host "Registered scheduled task '$TaskName': $Script daily at 00:00, 06:00, 12:00 and 18:00 as SYSTEM."
