from __future__ import annotations

from collections.abc import Callable

import pytest

from temporal_dsql_deploy.runtime.model import Component, Condition, Service, Stack
from temporal_dsql_deploy.runtime.units import build_stack
from temporal_dsql_deploy.settings.config import Settings
from tests.conftest import DSQL

MakeSettings = Callable[..., Settings]


@pytest.fixture(params=["local", "dsql"])
def stack(request: pytest.FixtureRequest, make_settings: MakeSettings) -> Stack:
    return build_stack(make_settings(**(DSQL if request.param == "dsql" else {})))


def test_guide_services_are_present(stack: Stack) -> None:
    for name in (
        "elasticsearch",
        "es-setup",
        "schema-setup",
        "temporal-history",
        "temporal-matching",
        "temporal-frontend",
        "temporal-worker",
        "temporal-ui",
    ):
        assert name in stack.names


def test_local_persistence_adds_postgresql_only_when_local(make_settings: MakeSettings) -> None:
    assert "postgresql" in build_stack(make_settings()).names
    assert "postgresql" not in build_stack(make_settings(**DSQL)).names


def test_dependencies_name_existing_services(stack: Stack) -> None:
    for service in stack:
        for dependency in service.depends_on:
            assert dependency in stack.names, f"{service.name} waits on unknown {dependency}"


def test_dependency_graph_is_acyclic(stack: Stack) -> None:
    order = stack.startup_order()
    assert sorted(order) == sorted(stack.names)
    for service in stack:
        for dependency in service.depends_on:
            assert order.index(dependency) < order.index(service.name)


def test_cycle_is_detected() -> None:
    cyclic = Stack(
        (
            Service("a", Component.ADMIN, depends_on={"b": Condition.STARTED}),
            Service("b", Component.ADMIN, depends_on={"a": Condition.STARTED}),
        )
    )
    with pytest.raises(ValueError, match="cycle"):
        cyclic.startup_order()


def test_waited_on_services_can_satisfy_the_condition(stack: Stack) -> None:
    for service in stack:
        for dependency, condition in service.depends_on.items():
            target = stack.get(dependency)
            if condition is Condition.HEALTHY:
                assert target.healthcheck is not None, f"{service.name} waits on {dependency} healthy"
                assert not target.one_shot
            if condition is Condition.COMPLETED:
                assert target.one_shot, f"{service.name} waits for {dependency} to complete"


def test_the_roles_start_together_once_schema_and_index_exist(stack: Stack) -> None:
    """Not the seed guide's chain (history, then matching, then frontend, then worker): Temporal needs no order
    among its roles. Frontend and worker, through which workflows come in, wait for the index as well."""
    expected = {
        "es-setup": {"elasticsearch": Condition.HEALTHY},
        "temporal-history": {"schema-setup": Condition.COMPLETED},
        "temporal-matching": {"schema-setup": Condition.COMPLETED},
        "temporal-frontend": {"schema-setup": Condition.COMPLETED, "es-setup": Condition.COMPLETED},
        "temporal-worker": {"schema-setup": Condition.COMPLETED, "es-setup": Condition.COMPLETED},
        "namespace-setup": {"temporal-frontend": Condition.HEALTHY},
        "temporal-ui": {"temporal-frontend": Condition.HEALTHY},
    }
    assert {name: dict(stack.get(name).depends_on) for name in expected} == expected
    assert "es-setup" not in stack.get("schema-setup").depends_on  # the schema needs no search engine


def test_no_port_is_used_twice(stack: Stack) -> None:
    ports = [port.number for service in stack for port in service.ports]
    assert len(ports) == len(set(ports)), sorted(ports)


def test_guide_ports(stack: Stack) -> None:
    def grpc(name: str) -> int:
        return next(p.number for p in stack.get(name).ports if p.name in {"grpc", "http"})

    assert grpc("temporal-frontend") == 7233
    assert grpc("temporal-history") == 7234
    assert grpc("temporal-matching") == 7235
    assert grpc("temporal-worker") == 7239
    assert grpc("temporal-ui") == 8080
    assert grpc("elasticsearch") == 9200


def test_long_running_services_have_health_checks(stack: Stack) -> None:
    for service in stack:
        assert service.one_shot or service.healthcheck is not None, service.name


def test_unknown_service_lookup_names_the_known_ones(stack: Stack) -> None:
    with pytest.raises(KeyError, match="temporal-frontend"):
        stack.get("nope")


def test_persistence_environment_never_carries_a_password(make_settings: MakeSettings) -> None:
    stack = build_stack(make_settings(TEMPORAL_SQL_PASSWORD="pw-should-not-leak"))
    for service in stack:
        assert "pw-should-not-leak" not in repr(service.environment)
