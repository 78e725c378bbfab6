#!/bin/sh
# The search engine's entrypoint: one node of the engine's runner, bound to the container's interfaces (the runner
# binds loopback unless its node's configuration says otherwise), HTTP on SEARCH_ENGINE_HTTP_PORT.
# SEARCH_ENGINE_JAVA_OPTS holds the JVM options (heap, log4j's lookups off).
set -eu
: "${SEARCH_ENGINE_HTTP_PORT:?set SEARCH_ENGINE_HTTP_PORT}" "${SEARCH_ENGINE_CLUSTER:?set SEARCH_ENGINE_CLUSTER}"
config="$SEARCH_ENGINE_DATA/node_1/config"
mkdir -p "$config"
printf 'network.host: 0.0.0.0\ndiscovery.type: single-node\n' > "$config/elasticsearch.yml"
cp "$config/elasticsearch.yml" "$config/opensearch.yml"
# The runner's HTTP port is one above the base it is given.
# shellcheck disable=SC2086 # the options are words by design
exec java ${SEARCH_ENGINE_JAVA_OPTS:-} -Djava.io.tmpdir=/tmp -cp '/opt/search-engine/lib/*' "$SEARCH_ENGINE_MAIN_CLASS" \
  -basePath "$SEARCH_ENGINE_DATA" -numOfNode 1 -baseHttpPort "$((SEARCH_ENGINE_HTTP_PORT - 1))" \
  -clusterName "$SEARCH_ENGINE_CLUSTER"
