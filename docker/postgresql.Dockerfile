# PostgreSQL for the stack's containers (dsql-local's backing store, or the PostgreSQL profile's database), from
# Debian's postgresql package in BASE_IMAGE (runtime/images.py makes it). It runs as the containers' user, uid 1000.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG POSTGRES_VERSION
RUN test -n "${POSTGRES_VERSION}" && test -x "/usr/lib/postgresql/${POSTGRES_VERSION}/bin/postgres" \
    || { echo "BASE_IMAGE has no PostgreSQL ${POSTGRES_VERSION}" >&2; exit 1; }
ENV PATH=/usr/lib/postgresql/${POSTGRES_VERSION}/bin:${PATH} \
    PGDATA=/var/lib/postgresql/data/cluster
COPY entrypoint.sh /usr/local/bin/entrypoint
RUN install -d -o 1000 -g 1000 -m 0700 /var/lib/postgresql/data

USER 1000
ENTRYPOINT ["entrypoint"]
CMD ["postgres"]
