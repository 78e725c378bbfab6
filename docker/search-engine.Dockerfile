# The search engine (Elasticsearch or OpenSearch) for the stack's containers: the engine's embeddable runner and
# its jars from Maven Central (the same, checksummed, with a current log4j, as the local runtime runs) on Debian's
# Java runtime in BASE_IMAGE (runtime/images.py makes it). One node; data in /var/lib/search-engine.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG MAIN_CLASS
RUN test -n "${MAIN_CLASS}" || { echo "pass --build-arg MAIN_CLASS=..." >&2; exit 1; }
ENV SEARCH_ENGINE_MAIN_CLASS=${MAIN_CLASS} \
    SEARCH_ENGINE_DATA=/var/lib/search-engine
COPY lib/ /opt/search-engine/lib/
COPY entrypoint.sh /usr/local/bin/entrypoint
RUN install -d -o 1000 -g 1000 -m 0700 /var/lib/search-engine
USER 1000
ENTRYPOINT ["entrypoint"]
