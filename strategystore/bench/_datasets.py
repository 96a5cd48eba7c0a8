"""The data directories of the scaling table, built with raw unsynced writes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from strategystore.bench._document import BRIEF_VERSIONS, LONG_BRIEF_VERSIONS, document
from strategystore.files import FileStore

__all__ = ["Dataset", "build_dataset"]


@dataclass
class Dataset:
    """A data directory of ``size`` documents for the scaling table."""

    size: int
    root: Path
    briefs: list[str]
    long_brief: str
    long_versions: int
    built_at: float
    next_version: dict[str, int] = field(default_factory=dict)


def build_dataset(root: Path, size: int) -> Dataset:
    """A data directory at ``root`` holding ``size`` documents.

    Briefs of ``BRIEF_VERSIONS`` versions each, the last one possibly shorter,
    plus one long brief of up to ``LONG_BRIEF_VERSIONS`` versions.
    """
    FileStore(root)
    long_versions = min(LONG_BRIEF_VERSIONS, size // 2)
    regular = size - long_versions
    briefs = [f"b{i:06d}" for i in range(-(-regular // BRIEF_VERSIONS))]
    layout = [(b, BRIEF_VERSIONS) for b in briefs]
    if regular % BRIEF_VERSIONS:
        layout[-1] = (briefs[-1], regular % BRIEF_VERSIONS)
    layout.append(("long", long_versions))
    dataset = Dataset(size, root, briefs, "long", long_versions, 0.0)
    for brief, versions in layout:
        directory = root / brief
        directory.mkdir()
        for version in range(1, versions + 1):
            (directory / f"{version}.json").write_bytes(document(brief, version).to_json_bytes())
        dataset.next_version[brief] = versions + 1
    dataset.built_at = time.monotonic()
    return dataset
