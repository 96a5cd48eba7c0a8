"""A small linearizability checker (Wing & Gong, with memoisation) over ``MemoryStore``.

A history is a list of ``Event``s: an operation on one brief, the times it
was invoked and returned (``time.monotonic_ns``, one clock for every process
on the machine) and its outcome. It is linearizable when some order of the
operations that respects real time (an operation that returned before
another was invoked comes first) gives, applied one by one to a
``MemoryStore``, exactly the recorded outcomes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from strategystore import (
    ConcurrentUpdateError,
    DuplicateVersionError,
    ImmutableVersionError,
    MemoryStore,
    StrategyDocument,
    VersionNotFoundError,
)
from strategystore.store import BaseStore
from tests.reliability._support import T0, T1, make_doc

#: An operation: its name, then its arguments (a version, tags).
Op = tuple[Any, ...]
#: ``("ok", value)`` or ``(error class name, what the error carries)``.
Outcome = tuple[Any, ...]
#: The documents of one brief as ``(version, canonical bytes)``, sorted.
State = tuple[tuple[int, bytes], ...]

_TAGS = ("a", "b", "c")
_VERSIONS = (1, 2, 3)


def random_ops(rng: random.Random, count: int) -> list[Op]:
    """``count`` operations on versions 1 to 3, reads and writes mixed."""
    ops: list[Op] = []
    for _ in range(count):
        kind = rng.choice(
            [
                "create_next",
                "save",
                "create",
                "update",
                "approve",
                "reject",
                "withdraw",
                "delete",
                "get",
                "get",
                "versions",
                "latest",
            ]
        )
        v = rng.choice(_VERSIONS)
        if kind in ("save", "create"):
            ops.append((kind, v, rng.choice(_TAGS)))
        elif kind == "update":
            ops.append((kind, v, rng.choice(_TAGS), rng.choice(_TAGS)))
        elif kind in ("approve", "reject", "withdraw", "delete", "get"):
            ops.append((kind, v))
        else:
            ops.append((kind,))
    return ops


def _doc(brief: str, version: int, tag: str) -> StrategyDocument:
    return make_doc(brief, version, metadata={"tag": tag})


def _value(value: object) -> object:
    if isinstance(value, StrategyDocument):
        return value.to_json_bytes()
    if isinstance(value, list):
        return tuple(_value(v) for v in value)
    return value


def apply(store: BaseStore, brief: str, op: Op) -> Outcome:
    """Run ``op`` on ``store`` and describe what it returned or raised.

    Errors the contract documents become outcomes; any other exception
    propagates, and fails whatever test made the call.
    """
    kind, *args = op
    later = T1 + timedelta(minutes=1)
    try:
        value: object = None
        if kind == "create_next":
            value = store.create_next(brief, metadata={"tag": "next"}, now=T0)
        elif kind == "save":
            store.save(_doc(brief, args[0], args[1]))
        elif kind == "create":
            store.create(_doc(brief, args[0], args[1]))
        elif kind == "update":
            version, tag, expected = args
            store.update(_doc(brief, version, tag), expected=_doc(brief, version, expected))
        elif kind == "approve":
            value = store.approve(brief, args[0], now=T1)
        elif kind == "reject":
            value = store.reject(brief, args[0], reason="no", now=T1)
        elif kind == "withdraw":
            value = store.withdraw(brief, args[0], reason="recalled", now=later)
        elif kind == "delete":
            value = store.delete(brief, args[0])
        elif kind == "get":
            value = store.get_strategy(brief, args[0])
        elif kind == "versions":
            value = store.list_version_numbers(brief)
        elif kind == "latest":
            value = store.get_latest(brief)
        else:  # pragma: no cover - a typo in a test
            raise AssertionError(f"unknown operation {op!r}")
    except DuplicateVersionError as exc:
        return ("DuplicateVersionError", exc.existing.to_json_bytes())
    except ConcurrentUpdateError as exc:
        return ("ConcurrentUpdateError", exc.current.to_json_bytes())
    except ImmutableVersionError as exc:
        return ("ImmutableVersionError", exc.status.value)
    except VersionNotFoundError:
        return ("VersionNotFoundError",)
    return ("ok", _value(value))


@dataclass(frozen=True)
class Event:
    """One completed operation of a history."""

    process: int
    invoked: int
    returned: int
    op: Op
    outcome: Outcome


def _model_step(state: State, brief: str, op: Op) -> tuple[State, Outcome]:
    model = MemoryStore()
    for _version, data in state:
        model.save(StrategyDocument.from_json_bytes(data))
    outcome = apply(model, brief, op)
    after = tuple((d.version, d.to_json_bytes()) for d in model.list_versions_by_brief(brief))
    return tuple(sorted(after)), outcome


def linearize(events: list[Event], brief: str, initial: State = ()) -> list[Event] | None:
    """An order of ``events`` that explains every outcome, or ``None`` if there is none."""
    steps: dict[tuple[State, Op], tuple[State, Outcome]] = {}
    dead_ends: set[tuple[frozenset[int], State]] = set()
    order: list[Event] = []

    def step(state: State, op: Op) -> tuple[State, Outcome]:
        if (state, op) not in steps:
            steps[(state, op)] = _model_step(state, brief, op)
        return steps[(state, op)]

    def search(remaining: frozenset[int], state: State) -> bool:
        if not remaining:
            return True
        if (remaining, state) in dead_ends:
            return False
        # Only an operation invoked before every other remaining one returned
        # can come next in real time.
        deadline = min(events[i].returned for i in remaining)
        for i in sorted(remaining, key=lambda i: events[i].invoked):
            event = events[i]
            if event.invoked > deadline:
                break
            after, outcome = step(state, event.op)
            if outcome == event.outcome:
                order.append(event)
                if search(remaining - {i}, after):
                    return True
                order.pop()
        dead_ends.add((remaining, state))
        return False

    return order if search(frozenset(range(len(events))), initial) else None


def overlapping(events: list[Event]) -> bool:
    """Whether two operations of different processes overlap in time."""
    return any(
        a.process != b.process and a.invoked < b.returned and b.invoked < a.returned
        for i, a in enumerate(events)
        for b in events[i + 1 :]
    )
