"""A hatchling build hook for the sdist: it keeps the root ``.gitignore`` out.

hatchling force-includes the ``.gitignore`` it finds into every sdist, which
no ``exclude`` pattern reaches; the sdist is meant to hold the package,
README.md, LICENSE and pyproject.toml only. ``pyproject.toml`` names this file
under ``[tool.hatch.build.targets.sdist.hooks.custom]``; building a wheel,
from a checkout or from the sdist, does not use it.
"""

from __future__ import annotations

from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class SdistContents(BuildHookInterface):
    """Drops the version-control ignore files from what the sdist must include."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Remove ``.gitignore`` and ``.hgignore`` from ``build_data["force_include"]``."""
        forced = build_data["force_include"]
        for source, target in list(forced.items()):
            if target in (".gitignore", ".hgignore"):
                del forced[source]
