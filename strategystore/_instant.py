"""Reads that list a brief and then read documents, answered as the store stood at one instant.

Readers never wait for writers: an answer is kept when, listed again
afterwards, the brief has the same versions and every document read is
still the one read (its stamp is unchanged), so the answer was the store's
at that second listing; it is made again otherwise. Only after several tries
in a row spoilt by writers is it made under the brief's lock, waited for
briefly, so that a reader slips in between writers and never queues behind
them. The algorithm knows nothing of any store: it is given the store's
primitives for one brief.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager
from typing import TypeVar

from strategystore._primitives import Loader
from strategystore.errors import StrategyStoreError
from strategystore.models import StrategyDocument

__all__ = ["LOCK_FREE_TRIES", "READER_LOCK_WAIT", "at_one_instant"]

#: Tries a listing read makes without the brief's lock before it tries the lock.
LOCK_FREE_TRIES = 8
#: How long such a read waits for the lock before it tries without it again.
READER_LOCK_WAIT = 0.05

_T = TypeVar("_T")


def at_one_instant(
    *,
    versions: Callable[[], list[int]],
    read: Loader,
    stamp: Callable[[int], Hashable],
    lock: Callable[[], AbstractContextManager[None]],
    pick: Callable[[list[int], Loader], _T],
) -> _T:
    """``pick(listing, load)`` over the brief as it stood at one instant.

    Args:
        versions: lists the brief's versions, newest first.
        read: reads one version.
        stamp: the version's stamp (see ``Primitives._stamp``).
        lock: the brief's lock, waiting at most ``READER_LOCK_WAIT`` seconds.
        pick: makes the answer from a listing and a loader over it.
    """
    tries = 0
    while True:
        tries += 1
        found = _lock_free(versions, read, stamp, pick)
        if found is not None:
            return found[0]
        if tries % LOCK_FREE_TRIES:
            continue
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(lock())
            except (StrategyStoreError, OSError):
                # No lock to be had (a read-only directory, a stuck writer):
                # go on without it, as a reader must still answer, leaving
                # the writers a moment first.
                time.sleep(min(0.001 * tries, 0.05))
                continue
            return pick(versions(), read)


def _lock_free(
    versions: Callable[[], list[int]],
    read: Loader,
    stamp: Callable[[int], Hashable],
    pick: Callable[[list[int], Loader], _T],
) -> tuple[_T] | None:
    """``(pick's answer,)`` if nothing it read changed before the brief was listed again."""
    listing = versions()
    stamps: dict[int, Hashable] = {}

    def load(version: int) -> StrategyDocument | None:
        stamps[version] = stamp(version)
        return read(version)

    result = pick(listing, load)
    # Listed first, stamped after: the answer is the store's at that listing.
    if versions() != listing:
        return None
    if any(stamp(version) != seen for version, seen in stamps.items()):
        return None
    return (result,)
