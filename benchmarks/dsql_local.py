"""How much dsql-local costs: one pgbench workload straight to PostgreSQL, then through the stand-in.

    nox -s bench_dsql_local          (or: python benchmarks/dsql_local.py [--clients 16] [--seconds 20])

The same table in the same database (the stand-in's backend), the same transactions (BEGIN; UPDATE one
row by key; SELECT it; COMMIT) at REPEATABLE READ both ways, pgbench's prepared (extended) protocol, and
conflicts retried by pgbench (--max-tries). Prints throughput, the ratio, transaction latency p50/p99
from pgbench's per-transaction log, and per-statement averages. Starts the stack if it is down and
leaves it as it found it.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from temporal_dsql_deploy.cli import settings_for
from temporal_dsql_deploy.database import dsql
from temporal_dsql_deploy.database.endpoint import DSQL_LOCAL_BACKEND_DATABASE, persistence_endpoint
from temporal_dsql_deploy.runtime.components import install_all
from temporal_dsql_deploy.runtime.stack import LocalStack

ROOT = Path(__file__).resolve().parents[1]
ROWS = 10_000
BATCH = 2_500  # under DSQL's 3,000 modified rows per transaction
SCRIPT = """\\set aid random(1, {rows})
BEGIN;
UPDATE bench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
SELECT abalance FROM bench_accounts WHERE aid = :aid;
COMMIT;
"""


@dataclass
class Run:
    label: str
    tps: float
    p50_ms: float
    p99_ms: float
    statements_ms: dict[str, float]
    retried: int


def _prepare(settings_dsql: object) -> None:
    with dsql.connect(settings_dsql) as conn:  # type: ignore[arg-type]
        conn.execute("DROP TABLE IF EXISTS bench_accounts")
        conn.execute("CREATE TABLE bench_accounts (aid int PRIMARY KEY, abalance int NOT NULL, filler text)")
        for start in range(1, ROWS + 1, BATCH):
            rows = "SELECT g, 0, repeat('x', 80) FROM generate_series(%s::int, %s::int) g"
            conn.execute(f"INSERT INTO bench_accounts {rows}", (start, min(start + BATCH - 1, ROWS)))


def _pgbench(label: str, pgbench: Path, target: list[str], env: dict[str, str], clients: int, seconds: int) -> Run:
    with tempfile.TemporaryDirectory(prefix="bench-dsql-local-") as work:
        script = Path(work) / "workload.sql"
        script.write_text(SCRIPT.format(rows=ROWS), encoding="utf-8")
        argv = [str(pgbench), *target, "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(seconds),
                "-r", "--max-tries=20", "-l", "--log-prefix", f"{work}/tx", "-f", str(script)]  # fmt: skip
        done = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, check=False,
                              timeout=seconds + 120, cwd=work)  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"pgbench ({label}) failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        latencies = sorted(int(line.split()[2]) / 1000 for log in Path(work).glob("tx*") for line in
                           log.read_text().splitlines())  # fmt: skip
    tps = float(re.search(r"tps = ([\d.]+)", done.stdout).group(1))  # type: ignore[union-attr]
    retried = re.search(r"number of transactions retried: (\d+)", done.stdout)
    statements = {m.group(2).strip(): float(m.group(1)) for m in
                  re.finditer(r"^\s+([\d.]+)\s+\d+\s+\d+\s+(\S.*)$", done.stdout, re.MULTILINE)}  # fmt: skip
    cuts = statistics.quantiles(latencies, n=100)
    return Run(label, tps, cuts[49], cuts[98], statements, int(retried.group(1)) if retried else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    settings = settings_for(ROOT)
    stack = LocalStack(settings, ROOT)
    paths = install_all(settings, ROOT, lambda message: print(f"  {message}"))
    was_running = stack.running(paths.process_compose)
    stack.up(lambda _message: None)
    settings = stack.settings
    local_dsql = settings.model_copy(update={"temporal_sql_plugin": "dsql"})
    _prepare(local_dsql)
    pgbench = paths.postgres_bin / "pgbench"
    password = settings.temporal_sql_password.get_secret_value() if settings.temporal_sql_password else ""
    isolation = {"PGOPTIONS": "-c default_transaction_isolation=repeatable\\ read"}  # the stand-in's level
    backend = ["-h", "127.0.0.1", "-p", str(settings.temporal_sql_port), "-U", settings.temporal_sql_user,
               DSQL_LOCAL_BACKEND_DATABASE]  # fmt: skip
    direct = _pgbench("PostgreSQL directly", pgbench, backend, {"PGPASSWORD": password, **isolation}, args.clients,
                      args.seconds)  # fmt: skip
    endpoint = persistence_endpoint(local_dsql)
    via = _pgbench("through dsql-local", pgbench,
                   ["-h", endpoint.host, "-p", str(endpoint.port), "-U", endpoint.user, endpoint.database],
                   {"PGPASSWORD": dsql.auth_token(endpoint), "PGSSLMODE": "verify-full",
                    "PGSSLROOTCERT": str(endpoint.ca_file)}, args.clients, args.seconds)  # fmt: skip
    if not was_running:
        stack.down(paths.process_compose, volumes=False)
    print(f"workload: BEGIN; UPDATE by key; SELECT by key; COMMIT over {ROWS} rows, {args.clients} clients, "
          f"{args.seconds}s each, pgbench -M prepared, REPEATABLE READ")  # fmt: skip
    for run in (direct, via):
        print(f"{run.label:<22} {run.tps:8.0f} tx/s   p50 {run.p50_ms:6.2f} ms   p99 {run.p99_ms:6.2f} ms   "
              f"retried {run.retried}")  # fmt: skip
    print(f"throughput ratio (through / direct): {via.tps / direct.tps:.2f}")
    print(f"added transaction latency: p50 {via.p50_ms - direct.p50_ms:+.2f} ms, "
          f"p99 {via.p99_ms - direct.p99_ms:+.2f} ms (4 statements each)")  # fmt: skip
    for statement, direct_ms in direct.statements_ms.items():
        through_ms = via.statements_ms.get(statement, float("nan"))
        print(f"  {statement[:60]:<60} {direct_ms:6.3f} ms -> {through_ms:6.3f} ms ({through_ms - direct_ms:+.3f})")


if __name__ == "__main__":
    main()
