"""Read and validate every document of a data directory in one process; print how many.

``python _validate_child.py DATA_DIR`` is the reference of ``check`` on a cold
index: one loop over every ``BRIEF/N.json`` file, its bytes read and decoded
with ``StrategyDocument.model_validate_json``, and nothing else (no layout
rules, no report). The benchmark times the whole process, as it times
``check``, so both sides pay the interpreter's start and their imports.
"""

import os
import sys

# Started by path, Python puts this file's directory first on the module path,
# where the benchmark's own modules would shadow others; the working directory
# takes its place, as for ``python -c``.
sys.path[0] = ""

from strategystore.models import StrategyDocument  # noqa: E402


def main(data_dir: str) -> None:
    """Validate every document file below ``data_dir`` and print their number."""
    count = 0
    with os.scandir(data_dir) as top:
        briefs = sorted(
            entry.path
            for entry in top
            if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)
        )
    for brief in briefs:
        with os.scandir(brief) as entries:
            for entry in entries:
                if entry.name.endswith(".json") and not entry.name.startswith("."):
                    with open(entry.path, "rb") as file:
                        StrategyDocument.model_validate_json(file.read())
                    count += 1
    print(count)


if __name__ == "__main__":
    main(sys.argv[1])
