#!/bin/sh
# The compose backup job: create the stanza (idempotent), then every night at BACKUP_AT (UTC)
# a differential backup, on Sundays a full one. WAL is archived by services-db all the time.
set -eu
until pgbackrest --stanza=canbao stanza-create; do sleep 30; done
pgbackrest --stanza=canbao check
pgbackrest --stanza=canbao info | grep -q 'full backup' || pgbackrest --stanza=canbao --type=full backup
while true; do
  now=$(date -u +%s)
  next=$(date -u -d "tomorrow ${BACKUP_AT:-01:30}" +%s)
  today=$(date -u -d "today ${BACKUP_AT:-01:30}" +%s)
  [ "$today" -gt "$now" ] && next=$today
  sleep $((next - now))
  if [ "$(date -u +%u)" = 7 ]; then type=full; else type=diff; fi
  pgbackrest --stanza=canbao --type=$type backup || echo "backup ($type) FAILED" >&2
done
