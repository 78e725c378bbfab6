from __future__ import annotations

from temporal_dsql_deploy.settings.config import Settings
from temporal_dsql_deploy.settings.reference import BEGIN, END, configuration_reference, render_readme_section
from tests.conftest import PROJECT_ROOT


def test_reference_lists_every_setting() -> None:
    reference = configuration_reference()
    for name in Settings.model_fields:
        assert f"`{name.upper()}`" in reference


def test_readme_reference_is_current() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert BEGIN in readme
    assert END in readme
    assert render_readme_section(readme) == readme, "README's configuration reference is stale: run `invoke docs`"
