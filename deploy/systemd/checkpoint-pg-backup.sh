#!/bin/sh
# A pg_dump of the Checkpoint database, run by checkpoint-pg-backup.service (docs/deploy.md, "Backups").
# Environment: CHECKPOINT_PG_URL (postgres://USER@HOST:PORT/DB; the password from PGPASSFILE), optionally
# CHECKPOINT_BACKUP_DIR (default /var/backups/checkpoint) and CHECKPOINT_BACKUP_DAYS (default 14).
# The hub's key files are not in the database and not in this dump: they are backed up apart (deploy.md).
set -eu
dir=${CHECKPOINT_BACKUP_DIR:-/var/backups/checkpoint}
days=${CHECKPOINT_BACKUP_DAYS:-14}
umask 077
out="$dir/checkpoint-$(date -u +%Y%m%dT%H%M%SZ).dump"
# Custom format: compressed, restorable table by table, and checkable with pg_restore --list.
pg_dump --format=custom --no-owner --no-privileges --dbname="$CHECKPOINT_PG_URL" --file="$out.partial"
# A dump that pg_restore cannot read is not a backup: fail the unit (and the OnFailure alert) now.
pg_restore --list "$out.partial" >/dev/null
mv "$out.partial" "$out"
find "$dir" -maxdepth 1 -name 'checkpoint-*.dump' -mtime "+$days" -delete
find "$dir" -maxdepth 1 -name 'checkpoint-*.dump.partial' -mmin +1440 -delete
echo "wrote $out ($(du -h "$out" | cut -f1))"
