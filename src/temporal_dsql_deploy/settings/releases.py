"""The Temporal releases the product supports, and what follows from each.

`TEMPORAL_VERSION` picks one; the product's server (upstream's with the dsql plugin), upstream's tools and schema
files, the image tag and the chart's appVersion all follow it. Each release has its own Go build list in server/
(one module file per minor release: one go.mod cannot hold two versions of go.temporal.io/server), and the plugin
code that differs between releases sits behind a build tag.
"""

from __future__ import annotations

from dataclasses import dataclass

# Always passed: the server's gRPC admin modules are not used and cost build time.
BASE_TAGS = ("disable_grpc_modules",)


@dataclass(frozen=True)
class Release:
    version: str
    modfile: str  # under server/: the release's build list (go.mod holds the newest)
    schema_version: str  # upstream's schema/postgresql/v12/temporal version the release runs on
    template_version: int  # upstream's Elasticsearch index template, schema/elasticsearch/visibility/versioned/vN
    tags: tuple[str, ...] = ()  # build tags selecting the plugin's code for this release
    # The worker role serves gRPC health (grpc.health.v1, its own service name) from 1.31; 1.30's worker serves no
    # gRPC at all, and is probed on its metrics endpoint instead.
    worker_grpc_health: bool = True

    @property
    def minor(self) -> tuple[int, int]:
        """The major and minor release numbers: upstream upgrades one minor release at a time."""
        major, minor, _patch = self.version.split(".")
        return int(major), int(minor)

    def go_flags(self) -> list[str]:
        """The `go build` flags that build the server module at this release."""
        modfile = [] if self.modfile == "go.mod" else [f"-modfile={self.modfile}"]
        return [*modfile, "-tags", ",".join((*BASE_TAGS, *self.tags))]


# Oldest first; a minor release's latest patch that can be built (upstream: patches may be skipped, minors may not).
# 1.31.3-1.31.5 require go.temporal.io/auto-scaled-workers v0.0.0-1.31.2 / v0.0.1-1.31.2, whose sources the Go
# module proxy refuses ("403 Forbidden: This module version is not available"); 1.31.2's own pin is served.
RELEASES = (
    Release("1.30.9", "go.1.30.mod", "1.18", 13, ("temporal_1_30",), worker_grpc_health=False),
    Release("1.31.2", "go.1.31.mod", "1.19", 14),
    Release("1.32.2", "go.mod", "1.19", 14),
)
LATEST = RELEASES[-1]


def supported_versions() -> str:
    return ", ".join(release.version for release in RELEASES)


def release(version: str) -> Release:
    """The supported release `version`; a ValueError naming the supported ones otherwise."""
    for candidate in RELEASES:
        if candidate.version == version:
            return candidate
    raise ValueError(f"Temporal {version} is not a release this product supports ({supported_versions()})")


def check_temporal_version(version: str) -> str:
    """A settings validator: the version, if the product supports it."""
    release(version)
    return version
