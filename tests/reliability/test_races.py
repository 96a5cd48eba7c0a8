"""Races between processes: one key, one brief, one expected document, readers, histories."""

from __future__ import annotations

import random
from collections.abc import Iterator
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

import pytest

from strategystore import FileStore
from tests.reliability._linearizability import Event, linearize, overlapping, random_ops
from tests.reliability._support import count, make_doc, scaled
from tests.reliability._workers import (
    race,
    race_create,
    race_create_next,
    race_delete_or_create_next,
    race_read_write,
    race_update,
    racing_pool,
    run_history,
)

#: Processes in every race.
N = 8


@pytest.fixture(scope="module")
def racers() -> Iterator[Pool]:
    """``N`` worker processes; each task of a round runs in its own one."""
    with racing_pool(N) as pool:
        yield pool


@pytest.fixture
def data(tmp_path: Path) -> Path:
    FileStore(tmp_path / "data")
    return tmp_path / "data"


def test_racing_creates_of_one_key_let_exactly_one_win(racers: Pool, data: Path) -> None:
    store = FileStore(data)
    for round_no in range(scaled(100)):
        brief = f"create-{round_no}"
        durable = round_no % 2 == 0
        results = race(racers, race_create, [(str(data), brief, i, durable) for i in range(N)])
        winners = [document for outcome, document, _ in results if outcome == "won"]
        assert len(winners) == 1, f"round {round_no}: {len(winners)} winners"
        assert len({pid for _, _, pid in results}) == N
        assert {document for _, document, _ in results} == {winners[0]}
        stored = store.get_strategy(brief, 1)
        assert stored is not None and stored.to_json_bytes() == winners[0]
        count("race: create rounds (8 processes each)")


def test_racing_create_nexts_on_one_brief_get_distinct_contiguous_versions(
    racers: Pool, data: Path
) -> None:
    store = FileStore(data)
    for round_no in range(scaled(50)):
        brief = f"next-{round_no}"
        durable = round_no % 2 == 0
        results = race(
            racers, race_create_next, [(str(data), brief, i, durable, 3) for i in range(N)]
        )
        returned = {
            doc.version: doc
            for doc in (
                make_doc().model_validate_json(raw) for created in results for raw in created
            )
        }
        assert sorted(returned) == list(range(1, 3 * N + 1)), f"round {round_no}"
        assert store.list_versions_by_brief(brief) == sorted(
            returned.values(), key=lambda d: -d.version
        )
        count("race: create_next rounds (8 processes x 3 each)")


def test_racing_updates_with_the_same_expected_let_exactly_one_win(
    racers: Pool, data: Path
) -> None:
    store = FileStore(data)
    for round_no in range(scaled(100)):
        brief = f"update-{round_no}"
        store.save(make_doc(brief, 1))
        durable = round_no % 2 == 0
        results = race(racers, race_update, [(str(data), brief, i, durable) for i in range(N)])
        winners = [document for outcome, document in results if outcome == "won"]
        assert len(winners) == 1, f"round {round_no}: {len(winners)} winners"
        # Every loser was shown the winner's document as the current one.
        assert {document for _, document in results} == {winners[0]}
        stored = store.get_strategy(brief, 1)
        assert stored is not None and stored.to_json_bytes() == winners[0]
        count("race: update rounds (8 processes each)")


def test_deletes_racing_create_nexts_lose_and_invent_nothing(racers: Pool, data: Path) -> None:
    store = FileStore(data)
    for round_no in range(scaled(60)):
        brief = f"delete-{round_no}"
        initial = make_doc(brief, 1)
        store.save(initial)
        durable = round_no % 2 == 0
        results = race(
            racers, race_delete_or_create_next, [(str(data), brief, i, durable) for i in range(N)]
        )
        deleted = sum(
            done for role, outcomes in results if role == "deleter" for _, done in outcomes
        )
        created = [raw for role, outcomes in results if role == "creator" for raw in outcomes]
        final = store.list_versions_by_brief(brief)
        assert 1 + len(created) - deleted == len(final), f"round {round_no}"
        assert {d.to_json_bytes() for d in final} <= {initial.to_json_bytes(), *created}
        assert (brief in store.list_briefs()) == bool(final)
        assert (data / brief).exists() == bool(final)
        count("race: delete against create_next rounds (4 + 4 processes)")


def test_readers_racing_writers_see_only_whole_documents_and_no_errors(
    racers: Pool, data: Path
) -> None:
    store = FileStore(data)
    for round_no in range(scaled(12)):
        brief = f"rw-{round_no}"
        initial = make_doc(brief, 1)
        store.save(initial)
        durable = round_no % 2 == 0
        results = race(
            racers, race_read_write, [(str(data), brief, i, durable, 30) for i in range(N)]
        )
        written = {initial.to_json_bytes()}
        seen: set[bytes] = set()
        for role, amount, documents in results:
            if role == "writer":
                written.update(documents)
                count("race: writes racing readers", amount)
            else:
                seen.update(documents)
                count("race: reads racing writers", amount)
        assert seen <= written, f"round {round_no}: a reader saw a document nobody wrote"
        assert len(seen) > 1, f"round {round_no}: the readers saw no write at all"
        count("race: reader/writer rounds (4 + 4 processes)")


def test_two_stores_in_different_processes_give_linearizable_histories(data: Path) -> None:
    rng = random.Random()
    processes = 3
    with racing_pool(processes) as pool:
        for history_no in range(scaled(60)):
            brief = f"lin-{history_no}"
            # Half the histories pause between operations, so files outlive the
            # racy window and the read caches get to answer.
            pause = 0.15 if history_no % 2 else 0.0
            args = [(str(data), brief, p, random_ops(rng, 6), pause) for p in range(processes)]
            results = race(pool, run_history, args)
            events = [Event(*raw) for per_process in results for raw in per_process]
            order = linearize(events, brief)
            shown = "\n".join(
                f"  p{e.process} [{e.invoked}, {e.returned}] {e.op} -> {e.outcome}" for e in events
            )
            assert order is not None, f"history {history_no} is not linearizable:\n{shown}"
            count("race: histories checked linearizable (3 stores)")
            count("race: operations in checked histories", len(events))
            count("race: histories with overlapping operations", overlapping(events))


def _event(process: int, span: tuple[int, int], op: tuple[Any, ...], result: Any) -> Event:
    return Event(process, span[0], span[1], op, ("ok", result))


def test_the_linearizability_checker_rejects_a_stale_read() -> None:
    a = make_doc("lin", 1, metadata={"tag": "a"}).to_json_bytes()
    b = make_doc("lin", 1, metadata={"tag": "b"}).to_json_bytes()
    writes = [
        _event(0, (0, 10), ("save", 1, "a"), None),
        _event(0, (20, 30), ("save", 1, "b"), None),
    ]
    assert linearize([*writes, _event(1, (40, 50), ("get", 1), b)], "lin") is not None
    assert linearize([*writes, _event(1, (25, 50), ("get", 1), a)], "lin") is not None
    assert linearize([*writes, _event(1, (40, 50), ("get", 1), a)], "lin") is None
    assert linearize([*writes, _event(1, (40, 50), ("get", 1), None)], "lin") is None
