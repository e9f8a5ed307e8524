"""The wheel carries every package: each source folder with an ``__init__.py`` is listed; every
package's ``__all__`` (its lazy re-exports included) names things that exist."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    mapping = config["package-dir"]  # "artdb.core" -> "core"
    listed = set(config["packages"])
    found = set()
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]) if rel.parts else package)
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"


def test_migrations_ship_their_template():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert "script.py.mako" in config["package-data"]["artdb.migrations"]


def _packages() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    return sorted(config["packages"])


@pytest.mark.parametrize("package", _packages())
def test_every_exported_name_imports(package):
    """A stale re-export (a name moved or renamed, the lazy list not updated) fails here, not in a
    user's ``from artdb.core.x import Name``."""
    module = importlib.import_module(package)
    missing = []
    for name in getattr(module, "__all__", []):
        try:
            getattr(module, name)
        except (AttributeError, ImportError) as exc:
            missing.append(f"{name}: {exc}")
    assert missing == [], f"{package}.__all__ names what it cannot import"
