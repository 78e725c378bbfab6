#!/bin/sh
# Runtime image entrypoint: refuse to start a Temporal service with a required variable missing,
# naming every missing one, instead of letting it start half-configured. The required names are
# read from the config template itself, so the two cannot drift apart.
set -eu

template="${TEMPORAL_CONFIG_TEMPLATE:-/etc/temporal/config/temporal.yaml}"

if [ "${1:-}" = "temporal-server" ]; then
  missing=""
  required="$(grep -o 'template "required" "[A-Z_]*"' "$template" | cut -d'"' -f4 | sort -u)"
  for name in $required; do
    eval "value=\${$name:-}"
    [ -n "$value" ] || missing="$missing $name"
  done
  if [ -n "$missing" ]; then
    echo "entrypoint: cannot start $*: missing required environment variables:$missing" >&2
    exit 64
  fi
  # Other members reach this container at its own address, not at the 0.0.0.0 it binds.
  if [ -z "${TEMPORAL_BROADCAST_ADDRESS:-}" ]; then
    TEMPORAL_BROADCAST_ADDRESS="$(hostname -i | cut -d' ' -f1)"
    export TEMPORAL_BROADCAST_ADDRESS
  fi
fi

exec "$@"
