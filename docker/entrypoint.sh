#!/bin/sh
# Entrypoint of the runtime image.
# - Secrets arrive as files (Compose secrets, Kubernetes secret volumes): NAME_FILE=/run/secrets/x becomes NAME,
#   so no secret is ever in the container's configuration, a command line or `docker inspect`.
# - `temporal-server` alone starts the roles named in TEMPORAL_SERVICES (history, matching, frontend, worker:
#   comma- or colon-separated) with the configuration in TEMPORAL_SERVER_CONFIG_FILE, as upstream's image does, after
#   checking that every variable that configuration requires is set, naming each one missing.
set -eu

for name in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)_FILE=.*/\1/p'); do
  file=""
  eval "file=\${${name}_FILE}"
  case "$file" in
    /run/secrets/*) ;;
    *) continue ;;
  esac
  if [ ! -r "$file" ]; then
    echo "entrypoint: ${name}_FILE names $file, which cannot be read" >&2
    exit 64
  fi
  value="$(cat "$file")"
  export "$name=$value"
  unset "${name}_FILE"
done

if [ "$#" -eq 1 ] && [ "$1" = "temporal-server" ]; then
  config="${TEMPORAL_SERVER_CONFIG_FILE:?set TEMPORAL_SERVER_CONFIG_FILE to the server configuration template}"
  [ -r "$config" ] || { echo "entrypoint: TEMPORAL_SERVER_CONFIG_FILE names $config, which cannot be read" >&2; exit 64; }
  services="$(printf '%s' "${TEMPORAL_SERVICES:-}" | tr ',:' '  ' | xargs)"  # xargs: words only, no blanks
  if [ -z "$services" ]; then
    echo "entrypoint: set TEMPORAL_SERVICES to the roles this container runs (history, matching, frontend, worker)" >&2
    exit 64
  fi
  missing=""
  # Names are single words ([A-Z_]), so splitting on whitespace is exact.
  # shellcheck disable=SC2013
  for required in $(grep -o 'template "required" "[A-Z_]*"' "$config" | cut -d'"' -f4 | sort -u); do
    eval "value=\${$required:-}"
    [ -n "$value" ] || missing="$missing $required"
  done
  if [ -n "$missing" ]; then
    echo "entrypoint: cannot start temporal-server ($services): missing required environment variables:$missing" >&2
    exit 64
  fi
  # Other members reach this container at its own address, not at the 0.0.0.0 it binds.
  if [ -z "${TEMPORAL_BROADCAST_ADDRESS:-}" ]; then
    TEMPORAL_BROADCAST_ADDRESS="$(hostname -i | cut -d' ' -f1)"
    export TEMPORAL_BROADCAST_ADDRESS
  fi
  set -- temporal-server --config-file "$config" --allow-no-auth start
  for service in $services; do
    set -- "$@" --service "$service"
  done
fi

exec "$@"
