# A base for the stack's images on Debian's official image, for users whose engine reaches a registry
# (BASE_IMAGES=registry, or auto when the pull works): the same packages and containers' user as the bases that
# mmdebstrap makes without a registry (runtime/images.py passes every argument).
ARG UPSTREAM_IMAGE
FROM ${UPSTREAM_IMAGE}
ARG DEBIAN_SUITE
ARG PACKAGES
ARG ADD_USER
SHELL ["/bin/sh", "-eu", "-c"]
# PACKAGES is word-split on purpose; the versions are those of the suite's current point release, as with mmdebstrap.
# hadolint ignore=DL3008,SC2086
RUN test -n "${DEBIAN_SUITE}" && test -n "${PACKAGES}" && test -n "${ADD_USER}" \
        || { echo "pass --build-arg DEBIAN_SUITE, PACKAGES and ADD_USER (invoke build does)" >&2; exit 1; }; \
    . /etc/os-release; \
    test "${VERSION_CODENAME:-}" = "${DEBIAN_SUITE}" \
        || { echo "UPSTREAM_IMAGE is Debian ${VERSION_CODENAME:-?}, not ${DEBIAN_SUITE}" >&2; exit 1; }; \
    apt-get update -q; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${PACKAGES}; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb; \
    ${ADD_USER}
