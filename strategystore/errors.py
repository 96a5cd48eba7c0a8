"""The exceptions strategystore raises.

::

    StrategyStoreError
    ├── InvalidBriefIdError        (also ValueError)
    ├── DuplicateVersionError      .brief_id .version .existing
    ├── VersionNotFoundError       (also LookupError) .brief_id .version
    ├── ImmutableVersionError      .brief_id .version .status
    ├── StatusChangeError          (also ValueError) .brief_id .version .status
    ├── ConcurrentUpdateError      .brief_id .version .current
    ├── CorruptDocumentError       .path .reason
    ├── LockTimeoutError           (also TimeoutError) .lock_path
    ├── StoreFormatError           not a data directory (or table), or a newer format
    ├── StoreUnavailableError      (also ConnectionError) .host .database .reason .hint:
    │                              a server that cannot be reached or dropped the
    │                              connection, refused the settings, or a full pool
    └── ConfigurationError         bad mode or setting for open_store, or FileStore
                                   on a platform without flock (Windows)

Every message names the thing that is wrong and, for files, the path, so a
person can fix the problem from the message alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strategystore.models import Status, StrategyDocument

__all__ = [
    "ConcurrentUpdateError",
    "ConfigurationError",
    "CorruptDocumentError",
    "DuplicateVersionError",
    "ImmutableVersionError",
    "InvalidBriefIdError",
    "LockTimeoutError",
    "StatusChangeError",
    "StoreFormatError",
    "StoreUnavailableError",
    "StrategyStoreError",
    "VersionNotFoundError",
]


class StrategyStoreError(Exception):
    """Base class of every error strategystore raises on purpose."""

    def __reduce__(self) -> tuple[object, ...]:
        # The subclasses take their context, not the message, as arguments, so
        # the default pickling (cls(*args)) would fail across processes.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(
    cls: type[StrategyStoreError], args: tuple[object, ...], state: dict[str, object]
) -> StrategyStoreError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class InvalidBriefIdError(StrategyStoreError, ValueError):
    """A brief id that cannot name a directory safely, or collides by case."""

    def __init__(self, brief_id: object, reason: str) -> None:
        self.brief_id = brief_id
        self.reason = reason
        super().__init__(f"invalid brief id {brief_id!r}: {reason}")


class DuplicateVersionError(StrategyStoreError):
    """``create`` found the key ``(brief_id, version)`` already stored."""

    def __init__(self, existing: StrategyDocument) -> None:
        self.brief_id = existing.brief_id
        self.version = existing.version
        self.existing = existing
        super().__init__(
            f"version {existing.version} of brief {existing.brief_id!r} already exists "
            f"(status {existing.status.value}); use save() to overwrite a draft "
            "or create_next() to add a new version"
        )


class VersionNotFoundError(StrategyStoreError, LookupError):
    """The version a write or status change names is not stored."""

    def __init__(self, brief_id: str, version: int) -> None:
        self.brief_id = brief_id
        self.version = version
        super().__init__(f"version {version} of brief {brief_id!r} does not exist")

    def __str__(self) -> str:
        # LookupError's str() would quote the message like a dict key.
        return str(self.args[0])


class ImmutableVersionError(StrategyStoreError):
    """Only drafts change: the stored version has another status."""

    def __init__(
        self,
        brief_id: str,
        version: int,
        status: Status,
        action: str,
        rule: str = "only drafts can change; create a new version instead",
    ) -> None:
        self.brief_id = brief_id
        self.version = version
        self.status = status
        super().__init__(
            f"cannot {action} version {version} of brief {brief_id!r}: "
            f"it is {status.value}, and {rule}"
        )


#: The method that takes a draft to each status.
_STATUS_DOORS = {
    "approved": "approve()",
    "rejected": "reject()",
    "withdrawn": "approve() and then withdraw()",
}


class StatusChangeError(StrategyStoreError, ValueError):
    """A ``save`` or ``update`` would change a stored draft's status.

    A status changes only through ``approve``, ``reject`` and ``withdraw``, so
    an approval has a single door. ``status`` is the status asked for.
    """

    def __init__(self, brief_id: str, version: int, status: Status) -> None:
        self.brief_id = brief_id
        self.version = version
        self.status = status
        door = _STATUS_DOORS.get(status.value, "its status methods")
        super().__init__(
            f"cannot make version {version} of brief {brief_id!r} {status.value} through "
            f"save or update: it is a draft, and a status changes only through its method; "
            f"store the content as a draft, then call {door}"
        )


class ConcurrentUpdateError(StrategyStoreError):
    """``update`` found a stored document other than the one it expected."""

    def __init__(self, current: StrategyDocument) -> None:
        self.brief_id = current.brief_id
        self.version = current.version
        self.current = current
        super().__init__(
            f"version {current.version} of brief {current.brief_id!r} changed since it "
            "was read; read it again (the error's .current) and retry the update"
        )


class CorruptDocumentError(StrategyStoreError):
    """A file in the data directory is unreadable, invalid or misplaced.

    The store never overwrites such a file: fix or remove it by hand
    (``strategystore check`` lists every one).
    """

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class LockTimeoutError(StrategyStoreError, TimeoutError):
    """A brief's lock was not obtained within ``lock_timeout`` seconds."""

    def __init__(self, lock_path: Path | str, timeout: float) -> None:
        self.lock_path = Path(lock_path)
        self.timeout = timeout
        super().__init__(
            f"could not lock {self.lock_path} within {timeout:g} s: another writer holds it; "
            "retry, or raise lock_timeout"
        )

    def __str__(self) -> str:
        return str(self.args[0])


class StoreFormatError(StrategyStoreError):
    """The directory is not a strategystore data directory, or is of a newer format."""


class StoreUnavailableError(StrategyStoreError, ConnectionError):
    """The database server cannot be reached, or dropped the connection during a call.

    A write that raises this either committed whole or left nothing behind;
    read the version to learn which. The message names the host and the
    database, never a password. ``reason`` says what went wrong and ``hint``
    what to do: for a server that cannot be reached, retry; for a setting
    that is wrong (an unknown database or user, a refused password, an
    invalid ``sslmode``, a missing privilege) or a pool whose connections
    are all in use, retrying the same call will not help.
    """

    def __init__(
        self,
        host: str,
        database: str,
        reason: str,
        hint: str = "check that the server is running and reachable, then retry",
    ) -> None:
        self.host = host
        self.database = database
        self.reason = reason
        self.hint = hint
        super().__init__(
            f"PostgreSQL database {database!r} on {host} is unavailable: {reason}; {hint}"
        )

    def __str__(self) -> str:
        return str(self.args[0])


class ConfigurationError(StrategyStoreError):
    """A mode or setting ``open_store`` does not know, or a ``FileStore`` that cannot run here."""
