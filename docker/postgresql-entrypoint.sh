#!/bin/sh
# PostgreSQL's entrypoint. A new database cluster is made whole in a directory beside PGDATA (initdb with password
# (scram) authentication for POSTGRES_USER, its password read from the file POSTGRES_PASSWORD_FILE names, a Compose
# secret; then the database POSTGRES_DB) and only then renamed to PGDATA, so a start interrupted half-way is redone
# from the start. Then PostgreSQL runs in the foreground, listening on every interface of the container.
set -eu

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_USER:?set POSTGRES_USER}" "${POSTGRES_DB:?set POSTGRES_DB}"
  : "${POSTGRES_PASSWORD_FILE:?set POSTGRES_PASSWORD_FILE to the file holding the password (a secret)}"
  [ -r "$POSTGRES_PASSWORD_FILE" ] || { echo "entrypoint: cannot read $POSTGRES_PASSWORD_FILE" >&2; exit 64; }
  staging="$PGDATA.new"
  rm -rf "$staging"
  initdb --pgdata="$staging" --username="$POSTGRES_USER" --pwfile="$POSTGRES_PASSWORD_FILE" \
    --auth=scram-sha-256 --encoding=UTF8 --no-instructions >/dev/null
  printf "listen_addresses = '*'\n" >> "$staging/postgresql.conf"
  printf 'host all all all scram-sha-256\n' >> "$staging/pg_hba.conf"
  if [ "$POSTGRES_DB" != "postgres" ]; then
    echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" \
      | postgres --single -j -D "$staging" postgres >/dev/null
  fi
  mv "$staging" "$PGDATA"
fi

exec "$@"
