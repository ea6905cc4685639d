#!/bin/sh
# With a command (`docker run IMAGE pg_controldata ...`) runs that. Otherwise
# creates a cluster if $PGDATA is empty and runs the server in the foreground,
# so that `docker stop` reaches it directly; arguments go to the server.
set -e
case "$1" in
  "" | -*) ;;
  *) exec "$@" ;;
esac
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb -D "$PGDATA" -U postgres --auth=trust --no-locale -E UTF8 >/dev/null
  echo "host all all all trust" >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
fi
exec postgres -D "$PGDATA" "$@"
