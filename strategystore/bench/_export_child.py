"""Export a data directory as JSON lines in a fresh interpreter, and print its peak memory.

``python _export_child.py DATA_DIR OUT`` streams like the CLI's export: brief
by brief, version by version, one JSON line written per document. It prints
one JSON object: ``docs``, ``seconds``, and the resident memory in KiB once the
store is open (``baseline_kib``) and at its highest (``peak_kib``).
"""

import json
import resource
import sys
import time

# Started by path, Python puts this file's directory first on the module path,
# where the benchmark's own modules would shadow others; the working directory
# takes its place, as for ``python -c``.
sys.path[0] = ""

from strategystore import FileStore  # noqa: E402


def _memory() -> tuple[int, int | None]:
    """Resident memory now and at its highest, in KiB; the highest only where known.

    On Linux both come from /proc (VmHWM belongs to this address space),
    because ru_maxrss carries the forking parent's high-water mark across exec
    and would hide the export's own.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            fields = dict(line.split(":", 1) for line in status)
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == "darwin" else peak, None


def main(data_dir: str, out_path: str) -> None:
    """Export ``data_dir`` to ``out_path`` and print what it took."""
    store = FileStore(data_dir, create=False)
    baseline, _ = _memory()
    count = 0
    start = time.perf_counter()
    with open(out_path, "w", encoding="utf-8") as out:
        for brief_id in store.list_briefs():
            for version in store.list_version_numbers(brief_id):
                doc = store.get_strategy(brief_id, version)
                if doc is not None:
                    out.write(doc.model_dump_json() + "\n")
                    count += 1
    seconds = time.perf_counter() - start
    current, peak = _memory()
    found = {
        "docs": count,
        "seconds": seconds,
        "baseline_kib": baseline,
        "peak_kib": peak if peak is not None else current,
    }
    print(json.dumps(found))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
