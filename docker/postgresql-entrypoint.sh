#!/bin/sh
# PostgreSQL's entrypoint: on an empty data directory, initdb with password (scram) authentication for
# POSTGRES_USER, its password read from the file POSTGRES_PASSWORD_FILE names (a Compose secret), and the database
# POSTGRES_DB; then PostgreSQL in the foreground, listening on every interface of the container.
set -eu

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_USER:?set POSTGRES_USER}" "${POSTGRES_DB:?set POSTGRES_DB}"
  : "${POSTGRES_PASSWORD_FILE:?set POSTGRES_PASSWORD_FILE to the file holding the password (a secret)}"
  [ -r "$POSTGRES_PASSWORD_FILE" ] || { echo "entrypoint: cannot read $POSTGRES_PASSWORD_FILE" >&2; exit 64; }
  initdb --username="$POSTGRES_USER" --pwfile="$POSTGRES_PASSWORD_FILE" --auth=scram-sha-256 --encoding=UTF8 \
    --no-instructions >/dev/null
  printf "listen_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
  printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != "postgres" ]; then
    echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" \
      | postgres --single -j -D "$PGDATA" postgres >/dev/null
  fi
fi

exec "$@"
