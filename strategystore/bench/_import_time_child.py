"""Time one import in a fresh interpreter and print the seconds it took.

``python _import_time_child.py STATEMENT`` runs a statement such as
``import pydantic``; ``python _import_time_child.py --file PATH`` imports the
module file at ``PATH`` under its own name, outside any package. Before the
clock starts nothing is imported beyond what every interpreter starts with,
so the time is the import's alone.
"""

import os
import sys
import time


def main(argv: list[str]) -> None:
    """Time the import ``argv`` names, and print its seconds."""
    # Started by path, Python puts this file's directory first on the module
    # path, where the benchmark's own modules would shadow others; the working
    # directory takes its place, as for ``python -c``.
    sys.path[0] = ""
    seconds = _time_file(argv[1]) if argv[0] == "--file" else _time_statement(argv[0])
    print(seconds)


def _time_statement(statement: str) -> float:
    code = compile(statement, "<import>", "exec")
    start = time.perf_counter()
    exec(code, {"__name__": "__main__"})
    return time.perf_counter() - start


def _time_file(path: str) -> float:
    # Imported before the clock starts, and only here, so that a statement's
    # imports cannot find it loaded already.
    import importlib.util  # noqa: PLC0415

    name = os.path.splitext(os.path.basename(path))[0]
    start = time.perf_counter()
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}", path=path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return time.perf_counter() - start


if __name__ == "__main__":
    main(sys.argv[1:])
