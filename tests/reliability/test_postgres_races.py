"""Races between processes on one PostgreSQL table, each process with its own store and pool.

The same races as ``test_races`` runs on a data directory, through the same
workers: one key, one brief, one expected document, and recorded histories
checked for linearizability against ``MemoryStore``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from multiprocessing.pool import Pool

import pytest

from strategystore.store import BaseStore
from tests.reliability._linearizability import Event, linearize, overlapping, random_ops
from tests.reliability._support import count, make_doc, scaled
from tests.reliability._workers import (
    Where,
    race,
    race_create,
    race_create_next,
    race_delete_or_create_next,
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
def where(pg_dsn: str, pg_table: str) -> Where:
    """The table the racers share, as the workers take it."""
    return (pg_dsn, pg_table)


def test_racing_creates_of_one_key_let_exactly_one_win(
    racers: Pool, where: Where, pg_store: BaseStore
) -> None:
    for round_no in range(scaled(60)):
        brief = f"create-{round_no}"
        results = race(racers, race_create, [(where, brief, i, True) for i in range(N)])
        winners = [document for outcome, document, _ in results if outcome == "won"]
        assert len(winners) == 1, f"round {round_no}: {len(winners)} winners"
        assert len({pid for _, _, pid in results}) == N
        assert {document for _, document, _ in results} == {winners[0]}
        assert pg_store.get_stored_bytes(brief, 1) == winners[0]
        count("postgres race: create rounds (8 processes each)")


def test_racing_create_nexts_on_one_brief_get_distinct_contiguous_versions(
    racers: Pool, where: Where, pg_store: BaseStore
) -> None:
    for round_no in range(scaled(30)):
        brief = f"next-{round_no}"
        results = race(racers, race_create_next, [(where, brief, i, True, 3) for i in range(N)])
        returned = [make_doc().model_validate_json(raw) for created in results for raw in created]
        versions = sorted(doc.version for doc in returned)
        assert versions == list(range(1, 3 * N + 1)), f"round {round_no}: {versions}"
        assert pg_store.list_versions_by_brief(brief) == sorted(returned, key=lambda d: -d.version)
        count("postgres race: create_next rounds (8 processes x 3 each)")


def test_racing_updates_with_the_same_expected_let_exactly_one_win(
    racers: Pool, where: Where, pg_store: BaseStore
) -> None:
    for round_no in range(scaled(60)):
        brief = f"update-{round_no}"
        pg_store.save(make_doc(brief, 1))
        results = race(racers, race_update, [(where, brief, i, True) for i in range(N)])
        winners = [document for outcome, document in results if outcome == "won"]
        assert len(winners) == 1, f"round {round_no}: {len(winners)} winners"
        # Every loser was shown the winner's document as the current one: no lost update.
        assert {document for _, document in results} == {winners[0]}
        assert pg_store.get_stored_bytes(brief, 1) == winners[0]
        count("postgres race: update rounds (8 processes each)")


def test_deletes_racing_create_nexts_lose_and_invent_nothing(
    racers: Pool, where: Where, pg_store: BaseStore
) -> None:
    for round_no in range(scaled(15)):
        brief = f"delete-{round_no}"
        initial = make_doc(brief, 1)
        pg_store.save(initial)
        results = race(
            racers, race_delete_or_create_next, [(where, brief, i, True) for i in range(N)]
        )
        deleted = sum(
            done for role, outcomes in results if role == "deleter" for _, done in outcomes
        )
        created = [raw for role, outcomes in results if role == "creator" for raw in outcomes]
        final = pg_store.list_versions_by_brief(brief)
        assert 1 + len(created) - deleted == len(final), f"round {round_no}"
        assert {d.to_json_bytes() for d in final} <= {initial.to_json_bytes(), *created}
        assert (brief in pg_store.list_briefs()) == bool(final)
        count("postgres race: delete against create_next rounds (4 + 4 processes)")


def test_stores_in_different_processes_give_linearizable_histories(where: Where) -> None:
    rng = random.Random()
    processes = 3
    with racing_pool(processes) as pool:
        for history_no in range(scaled(60)):
            brief = f"lin-{history_no}"
            args = [(where, brief, p, random_ops(rng, 6), 0.0) for p in range(processes)]
            events = [Event(*raw) for per in race(pool, run_history, args) for raw in per]
            shown = "\n".join(
                f"  p{e.process} [{e.invoked}, {e.returned}] {e.op} -> {e.outcome}" for e in events
            )
            assert linearize(events, brief) is not None, (
                f"history {history_no} is not linearizable:\n{shown}"
            )
            count("postgres race: histories checked linearizable (3 stores)")
            count("postgres race: operations in checked histories", len(events))
            count("postgres race: histories with overlapping operations", overlapping(events))
