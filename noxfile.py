"""Test sessions. `nox` runs the default set (the README's test command); `nox -l` lists them all."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nox

from temporal_dsql_deploy.settings.releases import RELEASES

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
# `nox` runs these two lanes side by side (the `lanes` session). The stack lane's sessions run stacks, on the stack's
# fixed ports and the one Docker engine, so one after another; the static lane's need none of that and run beside
# them, at a lower CPU priority so the stack lane keeps its timings.
STATIC_LANE = ["lint", "typecheck", "go", "unit", "chart", "kube", "arch"]
# The faults session first: its stack mostly waits out held faults, so the static lane's CPU costs it least.
STACK_LANE = ["faults", "integration", "containers", "multihost", "upgrade"]
STATIC_LANE_NICENESS = 10
STOP_WAIT_S = 60  # for an interrupted lane to stop what it started
nox.options.sessions = ["lanes"]

ARCHITECTURES = ["amd64", "arm64"]
GO_MODULES = ["dsql-local", "server"]
# go test -race where the module's own code is concurrent; the server module's tests import Temporal's
# suites, whose race-instrumented build alone would take minutes on two cores.
GO_UNIT_FLAGS = {"dsql-local": ["-race"], "server": ["-skip", "TestUpstream|TestLive"]}
# The Go toolchain the project's modules pin; the go command fetches it from the module proxy once.
GO_ENV = {"GOTOOLCHAIN": "go1.26.10", "CGO_ENABLED": "1"}
# The build flags each module is checked with: the server module once per supported Temporal release.
GO_BUILDS = {"dsql-local": [[]], "server": [release.go_flags() for release in RELEASES]}
SEARCH_ENGINES = ["elasticsearch", "opensearch"]


@nox.session(venv_backend="none")
def lanes(session: nox.Session) -> None:
    """Every session of `./run nox`: the static lane (lint, typecheck, go, unit, chart, kube, arch) beside the stack
    lane (faults, integration, containers, multihost, upgrade); the static lane's output follows the stack lane's.
    Fails if either lane does."""
    # Not session.create_tmp(): it would also set TMPDIR, inside the checkout, for every stack the stack lane runs.
    log = Path(".nox", "lanes", "static-lane.log").absolute()
    log.parent.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    with log.open("w", encoding="utf-8") as output:
        # In this process group: a Ctrl-C, or a CI's stop sent to the group, reaches both lanes, each stopping its own.
        static = subprocess.Popen(["nice", "-n", str(STATIC_LANE_NICENESS), sys.executable, "-m", "nox", "-s",
                                   *STATIC_LANE], stdout=output, stderr=subprocess.STDOUT)  # fmt: skip

        def announce() -> None:  # at once, not after the stack lane: a failure there is worth knowing early
            code = static.wait()
            verdict = "passed" if code == 0 else f"FAILED (exit {code})"
            session.log(f"static lane {verdict} in {time.monotonic() - began:.0f}s; its output follows the stack "
                        f"lane's, and is in {log}")  # fmt: skip

        watcher = threading.Thread(target=announce, daemon=True)
        watcher.start()
        # A SIGTERM to this process alone (a CI's cancel) stops both lanes as a Ctrl-C does, not this one only.
        previous = signal.signal(signal.SIGTERM, _as_interrupt)
        try:
            session.run(sys.executable, "-m", "nox", "-s", *STACK_LANE, external=True)
        except (KeyboardInterrupt, SystemExit):  # stopped: the static lane too, as nox stops a session (SIGINT first)
            _stop(static)
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
            watcher.join()  # the static lane is never left running, nor its output unseen
            print(log.read_text(encoding="utf-8"), flush=True)
    if static.returncode != 0:
        session.error(f"the static lane failed (exit {static.returncode}); its output is above and in {log}")


def _as_interrupt(_signal: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _stop(lane: subprocess.Popen[bytes]) -> None:
    """Interrupt `lane` (nox passes it on to its session, whose fixtures stop what they started), then end it if it
    has not ended within STOP_WAIT_S."""
    with contextlib.suppress(ProcessLookupError):
        lane.send_signal(signal.SIGINT)
        try:
            lane.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            lane.kill()


def install(session: nox.Session, *groups: str) -> None:
    """Install the locked dependencies (uv.lock) of the project plus `groups` into the session."""
    session.run_install(
        "uv",
        "sync",
        "--frozen",
        "--quiet",
        "--no-default-groups",
        *(f"--group={g}" for g in groups),
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting check."""
    install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy, strict on the package."""
    install(session, "lint")
    session.run("mypy")


@nox.session(venv_backend="none")
def go(session: nox.Session) -> None:
    """The Go modules: gofmt, go vet, go test (the runs against a live stand-in — the conformance table,
    upstream's persistence suites — are in `integration`); the server module at every supported Temporal release."""
    for module in GO_MODULES:
        with session.chdir(module):
            unformatted = session.run("gofmt", "-l", ".", silent=True, external=True, env=GO_ENV)
            if unformatted and str(unformatted).strip():
                session.error(f"gofmt would change these files in {module}/:\n{unformatted}")
            for flags in GO_BUILDS[module]:
                session.run("go", "vet", *flags, "./...", external=True, env=GO_ENV)
                listed = session.run("go", "list", *flags, "./...", silent=True, external=True, env=GO_ENV)
                packages = [package for package in str(listed).split() if not package.endswith("/conformance")]
                session.run("go", "test", *flags, *GO_UNIT_FLAGS[module], "-count=1", *packages, external=True,
                            env=GO_ENV)  # fmt: skip


@nox.session
def unit(session: nox.Session) -> None:
    """Unit tests: configuration, service model, renderers, task surface; on every core (pytest-xdist), each file on
    one worker (a file's module-scoped fixtures, such as a scratch PostgreSQL on a fixed port, are made once)."""
    install(session, "test")
    session.run("pytest", "--numprocesses=auto", "--dist=loadfile", "tests/unit", *session.posargs)


@nox.session
def chart(session: nox.Session) -> None:
    """The Helm chart generated from the service model, offline: helm lint and template for several value sets, every
    manifest against Kubernetes' strict schemas (three minor releases), helm-unittest's suites (helm and
    helm-unittest pinned, built once into the cache)."""
    install(session, "test")
    session.run("pytest", "-m", "chart", "tests/chart", *session.posargs)


@nox.session
def kube(session: nox.Session) -> None:
    """The chart installed with helm into a Kubernetes control plane of its own on loopback (etcd, kube-apiserver,
    kube-controller-manager, kube-scheduler v1.37.2, kwok's fake nodes in three zones; all built once into the
    cache): objects admitted, hooks in order, roles available, spread over zones on upgrade; all stopped after."""
    install(session, "test")
    session.run("pytest", "-m", "kube", "tests/kube", *session.posargs)


# Both persistence profiles and both search engines, in two runs: the default (DSQL through dsql-local, with
# Elasticsearch) and PostgreSQL straight with OpenSearch.
PROFILES = [("elasticsearch", "dsql"), ("opensearch", "postgres12_pgx")]
# The tests that make their own database or stand-in (the schema applier's, dsql-local's, upstream's suites) do the
# same whatever the stack's profile, and so do those about `up` itself and PostgreSQL's supervision: the default
# profile's run runs them, the other does not repeat them. Those about the stack on DSQL have nothing to test on
# PostgreSQL.
SELECTED = {
    "dsql": "integration",
    "postgres12_pgx": "integration and not own_database and not dsql_profile and not profile_independent",
}


@nox.session
@nox.parametrize(("engine", "plugin"), PROFILES)
def integration(session: nox.Session, engine: str, plugin: str) -> None:
    """Integration tests against the real local stack (PostgreSQL, dsql-local, search engine, Temporal, UI)."""
    install(session, "test")
    session.run("pytest", "-m", SELECTED[plugin], "tests/integration", *session.posargs,
                env={"SEARCH_ENGINE": engine, "TEMPORAL_SQL_PLUGIN": plugin})  # fmt: skip


@nox.session
@nox.parametrize("temporal", [release.version for release in RELEASES[:-1]])
def releases(session: nox.Session, temporal: str) -> None:
    """Each supported Temporal release before the newest (which `integration` covers): the stack on it, the DSQL
    profile, a workflow end to end, and upstream's persistence suites of that release through the plugin."""
    install(session, "test")
    stack_dir = f".stack-release-{temporal}"  # a fresh install of that release, not the newest's data
    shutil.rmtree(stack_dir, ignore_errors=True)
    session.run("pytest", "-m", "integration", "tests/integration/test_local_stack.py",
                "tests/integration/test_upstream_suites.py", "-k", "test_smoke or upstream_persistence_suites_pass",
                *session.posargs, env={"TEMPORAL_VERSION": temporal, "STACK_DIR": stack_dir})  # fmt: skip


def _upgrade_tests(session: nox.Session, runtime: str) -> None:
    install(session, "test")
    stack_dir = f".stack-upgrade-{runtime}"
    shutil.rmtree(stack_dir, ignore_errors=True)
    session.run("pytest", "-m", "upgrade", "-k", runtime, "tests/upgrade", *session.posargs,
                env={"TEMPORAL_VERSION": RELEASES[0].version, "STACK_DIR": stack_dir, "TEMPORAL_SQL_PLUGIN": "dsql",
                     "SEARCH_ENGINE": "elasticsearch", "PROJECT_NAME": "temporal-dsql-upgrade"})  # fmt: skip


@nox.session
def upgrade(session: nox.Session) -> None:
    """`invoke upgrade` release by release (the oldest supported to the newest) on the local runtime and the DSQL
    profile, while a steady load runs and long-running workflows (timers, signals, children, retries,
    continue-as-new) are in flight: every workflow completes right and replays. A stack directory of its own."""
    _upgrade_tests(session, "local")


@nox.session(name="upgrade_containers")
def upgrade_containers(session: nox.Session) -> None:
    """The same upgrade under load with the stack in containers on a real Docker engine (each release's image)."""
    _upgrade_tests(session, "docker")


@nox.session
@nox.parametrize("arch", ARCHITECTURES)
def arch(session: nox.Session, arch: str) -> None:
    """Per architecture: validate the compose file, cross-compile the runtime's programs and check their ELF type."""
    install(session, "test")
    output = f"{session.create_tmp()}/docker-compose.{arch}.yml"
    session.run("invoke", "compose", "--arch", arch, "--output", output)
    session.run("check-jsonschema", "--builtin-schema", "vendor.compose-spec", output)
    # `invoke build` fails unless every binary's ELF machine type is `arch`; it prints each one. No images: the
    # containers session builds and runs them, in the stack lane, where the engine is its own.
    session.run("invoke", "build", "--arch", arch, "--no-images")


# The short fault pass of `./run nox`: each fault once at a few workflows a second, a lasting fault held 15 s (the
# IAM-token fault holds a token's lifetime, 30 s); the long form loads harder and holds them longer. Several hosts:
# the history host cut off 30 s, longer than the ring takes to see it gone.
FAULT_PASSES = {
    "short": {"FAULTS_RATE": "3", "FAULTS_HOLD_S": "15"},
    "long": {"FAULTS_RATE": "8", "FAULTS_HOLD_S": "180"},
    "multihost": {"FAULTS_RATE": "3", "FAULTS_HOLD_S": "30"},
}


@nox.session
def faults(session: nox.Session) -> None:
    """Faults under load, each once (kill -9 each Temporal service, PostgreSQL and dsql-local restarts, the search
    engine down 15 s, 30 s IAM tokens, 10% conflicts): nothing lost or duplicated; prints the table."""
    install(session, "test")
    session.run("pytest", "-m", "faults", "tests/faults", *session.posargs, env=FAULT_PASSES["short"])


@nox.session
def containers(session: nox.Session) -> None:
    """The stack in containers on a real Docker engine (the project's own where none answers): images built here,
    the integration checks through the published ports, and the fault pass on containers; all stopped after."""
    install(session, "test")
    session.run("pytest", "-m", "containers", "tests/containers", *session.posargs, env=FAULT_PASSES["short"])


@nox.session
def multihost(session: nox.Session) -> None:
    """Temporal on several hosts in containers (3 history, 2 matching, 2 frontend, 64 shards) over one DSQL
    stand-in: a history host killed, one cut off the network 30 s, hosts added and taken away, a rolling restart,
    under load; the Region drill's short form on the same stack; all stopped after."""
    install(session, "test")
    session.run("pytest", "-m", "multihost", "tests/multihost", *session.posargs,
                env={**FAULT_PASSES["multihost"], "DRILL_FORM": "short"})  # fmt: skip


@nox.session(name="multihost_long")
def multihost_long(session: nox.Session) -> None:
    """The several-hosts pass under heavier load, the history host cut off for 180 s."""
    install(session, "test")
    session.run("pytest", "-m", "multihost", "tests/multihost", *session.posargs, env=FAULT_PASSES["long"])


@nox.session(name="faults_long")
def faults_long(session: nox.Session) -> None:
    """The fault pass under heavier load, lasting faults held for 180 s."""
    install(session, "test")
    session.run("pytest", "-m", "faults", "tests/faults", *session.posargs, env=FAULT_PASSES["long"])


@nox.session
def bench(session: nox.Session) -> None:
    """`invoke bench --compare`: the DSQL and PostgreSQL profiles beside `temporal server start-dev` and pgbench's
    physical limit on this machine (prints the table, writes JSON and a PNG; arguments go to `invoke bench`)."""
    install(session, "test")
    session.run("invoke", "bench", *(session.posargs or ["--compare"]))


@nox.session(name="bench_stack")
def bench_stack(session: nox.Session) -> None:
    """Measure the local stack: warm `up` time, resident memory, smoke duration (prints numbers)."""
    install(session, "test")
    session.run("python", "benchmarks/local_stack.py", *session.posargs)


@nox.session(name="bench_dsql_local")
def bench_dsql_local(session: nox.Session) -> None:
    """dsql-local's cost: one pgbench workload straight to PostgreSQL and through the stand-in (prints numbers)."""
    install(session, "test")
    session.run("python", "benchmarks/dsql_local.py", *session.posargs)


def _region_drill(session: nox.Session, form: str) -> None:
    install(session, "test")
    session.run("pytest", "-m", "regions", "tests/multihost", *session.posargs, env={"DRILL_FORM": form})


@nox.session(name="region_drill")
def region_drill(session: nox.Session) -> None:
    """Temporal in two Regions of one peered DSQL cluster (containers, several hosts per role in each): the serving
    Region cut off under steady load (its hosts and endpoint; then its endpoint alone, its hosts alive), failover, the
    load on the other Region, a fail-back; RPO 0, each RTO reported. The short form, which `multihost` (in `./run nox`)
    runs too on its stack; `region_drill_long` holds each phase longer."""
    _region_drill(session, "short")


@nox.session(name="region_drill_long")
def region_drill_long(session: nox.Session) -> None:
    """The Region drill's long form: 4 workflows/s, 30-60 s phases."""
    _region_drill(session, "long")
