"""The rules ``resolve`` settles a conflicted document by, over its three stages; no git here.

Git never line-merges a document (``.gitattributes`` says ``-merge``), so a
document changed on both sides is always a conflict. This module settles
those conflicts by document rules, reading the three stages of each
conflicted document from git's index (never the conflict markers)::

    report = resolve_work_tree(Path("strategy-data"))
    for resolution in report.resolutions:
        print(resolution)  # acme/2.json: both sides added version 2; kept ours ...

The rules (DESIGN §8), in pure functions over a conflict's three stages
(``plan``, ``resolve_conflict``, ``merge_drafts``); the git part
(``resolve_work_tree``) only reads the index, writes and stages:

- *both sides added a version* (no base): the one created earlier keeps the
  number, the other becomes the next free version of the brief, its
  ``version`` rewritten and its timestamps kept. Only drafts move: when the
  later one is sealed and the earlier a draft, the draft moves; two different
  sealed versions stay a conflict. Two additions with the same content of
  which one is sealed (the same draft, approved on one side) give the sealed
  one, and identical additions are simply taken.
- *both sides changed one draft*: a three-way merge by section key (title and
  body each on their own) and by metadata key, and of ``status_reason``. A
  change on one side applies; the same item changed differently on both sides,
  removed on one and changed on the other, or added on both with different
  content stays a conflict, named. The section order is merged too: the order
  of the sections all three hold is that of the side that changed it (both
  changing it differently is a conflict), and each section a side added
  follows the section it follows on that side (its *anchor*). Sections the
  two sides added after one anchor come as two runs, the run whose keys sort
  first first; a section both added alike keeps its place, and one they
  placed differently is a conflict. The merged draft takes the later
  ``updated_at`` of the two.
  Three drafts not all created at one moment are not one draft's history
  (one was renumbered, say) and stay a conflict.
- *one side sealed a version (approved, rejected or withdrawn it, content as
  at the base) and the other edited its content as a draft*: the sealed
  version stays exactly as sealed, and the edit is kept as the next free
  version, a draft with its timestamps.
- *a draft deleted on one side and edited on the other* stays a conflict.

Everything else (two sides sealing differently, a change to a version sealed
at the base, the deletion of a sealed version, a stage that is not a valid
document at its path) stays a conflict with the reason. The rules do not
depend on which side is which, except one tie-break: two versions added at
the same moment leave the number with the *current branch*, which is the
branch checked out in a merge or cherry-pick (stage 2, "ours") and, in a
rebase, the branch being rebased (stage 3): rebasing a branch onto upstream
gives the same files as merging upstream into it.

A *free* version is above every version of the brief in the work tree, in
any stage of the index, and every number this run has already given out.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from strategystore._layout import (
    DocumentFileError,
    decode_document_file,
    describe_invalid,
    document_name,
    misplacement,
)
from strategystore._merge import DraftMerge, Sides, merge_drafts, other_document
from strategystore._render import iso
from strategystore.models import (
    MAX_VERSION,
    Status,
    StrategyDocument,
    renumbered,
    seal_of,
)

__all__ = ["Allocator", "Conflict", "Resolution", "Sides", "plan", "resolve_conflict"]


# -- what resolve is given and what it decides ------------------------------------


@dataclass(frozen=True, repr=False)
class Conflict:
    """The three stages of one conflicted document, as bytes (``None``: absent on that side).

    Attributes:
        brief_id: the brief its path names.
        version: the version its path names.
        base: stage 1, the common ancestor's file.
        ours: stage 2.
        theirs: stage 3.
    """

    brief_id: str
    version: int
    base: bytes | None
    ours: bytes | None
    theirs: bytes | None

    @property
    def path(self) -> str:
        """The document's path in the data directory: ``acme/2.json``."""
        return f"{self.brief_id}/{document_name(self.version)}"

    def swapped(self) -> Conflict:
        """The same conflict seen from the other side."""
        return Conflict(self.brief_id, self.version, self.base, self.theirs, self.ours)

    def __repr__(self) -> str:
        def shown(data: bytes | None) -> str:
            return "None" if data is None else f"<{len(data)} bytes>"

        return (
            f"Conflict({self.brief_id!r}, {self.version}, base={shown(self.base)}, "
            f"ours={shown(self.ours)}, theirs={shown(self.theirs)})"
        )


@dataclass(frozen=True, repr=False)
class Resolution:
    """What ``resolve`` does with one conflicted document.

    Attributes:
        path: the conflicted document's path in the data directory.
        account: what was done (or why it was left), for a person.
        documents: the documents to write, each at its own path, in canonical
            bytes (the conflicted path's, and a renumbered one's).
        remove: the conflicted path is to be removed (a deletion wins).
        left: why the document stays in conflict; empty when it is resolved.
    """

    path: str
    account: str
    documents: tuple[StrategyDocument, ...] = ()
    remove: bool = False
    left: tuple[str, ...] = ()

    @classmethod
    def leave(cls, path: str, *reasons: str) -> Resolution:
        """A document left in conflict, for these reasons."""
        return cls(path, "left in conflict: " + "; ".join(reasons), left=reasons)

    @property
    def resolved(self) -> bool:
        """Whether the document is resolved (written, or removed)."""
        return not self.left

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path of the data directory this resolution writes or removes."""
        written = tuple(f"{doc.brief_id}/{document_name(doc.version)}" for doc in self.documents)
        return (self.path, *written) if self.remove else written

    def __str__(self) -> str:
        return f"{self.path}: {self.account}"

    def __repr__(self) -> str:
        if self.left:
            return f"<Resolution {self.path} left: {'; '.join(self.left)}>"
        if self.remove:
            return f"<Resolution {self.path} removed>"
        return f"<Resolution {self.path} writes {', '.join(self.paths)}>"


# -- the rules ---------------------------------------------------------------------

#: Hands out the next free version of a brief; raises ``ValueError`` when none is left.
Allocator = Callable[[str], int]


def content_key(doc: StrategyDocument) -> str:
    """What two copies of one draft at different version numbers share: the seal at 1."""
    return seal_of(renumbered(doc, 1))


def plan(
    conflicts: Iterable[Conflict],
    taken: Mapping[str, Collection[int]],
    sides: Sides | None = None,
    present: Mapping[str, Mapping[str, int]] | None = None,
) -> list[Resolution]:
    """Decide every conflict, in path order, handing out free versions as needed.

    Args:
        conflicts: the conflicted documents.
        taken: for each brief, the versions a new number must stay above (the
            work tree's and every stage's); the conflicts' own are added.
        sides: how the sides are named and which is current (a merge's by default).
        present: for each brief, the other versions it holds, by ``content_key``:
            a draft that would be renumbered but is there already (brought over
            by an earlier cherry-pick, say) is not added again.

    Returns:
        One resolution per conflict, sorted by brief and version.
    """
    sides = sides or Sides()
    ordered = sorted(conflicts, key=lambda c: (c.brief_id, c.version))
    highest: dict[str, int] = {b: max(vs, default=0) for b, vs in taken.items()}
    for conflict in ordered:
        highest[conflict.brief_id] = max(highest.get(conflict.brief_id, 0), conflict.version)

    def next_free(brief_id: str) -> int:
        version = highest.get(brief_id, 0) + 1
        if version >= MAX_VERSION:
            raise ValueError(f"brief {brief_id!r} has no free version number left")
        highest[brief_id] = version
        return version

    def copy_of(doc: StrategyDocument) -> int | None:
        return (present or {}).get(doc.brief_id, {}).get(content_key(doc))

    return [resolve_conflict(conflict, sides, next_free, copy_of) for conflict in ordered]


def resolve_conflict(
    conflict: Conflict,
    sides: Sides,
    next_free: Allocator,
    copy_of: Callable[[StrategyDocument], int | None] | None = None,
) -> Resolution:
    """Decide one conflicted document by the rules of the module docstring.

    Args:
        conflict: its three stages.
        sides: how the sides are named and which is the current branch.
        next_free: gives the next free version of a brief (called only when a
            document moves to one).
        copy_of: the version at which the brief holds a copy of a document
            already, if it does.

    Returns:
        What to write, or why it stays in conflict.
    """
    path = conflict.path
    problems: list[str] = []
    base = _decode(conflict, conflict.base, "the base", problems, stored=False)
    ours = _decode(conflict, conflict.ours, sides.ours, problems)
    theirs = _decode(conflict, conflict.theirs, sides.theirs, problems)
    if problems:
        return Resolution.leave(path, *problems)
    if base is None:
        if ours is None or theirs is None:
            only = sides.ours if theirs is None else sides.theirs
            return Resolution.leave(
                path, f"only {only} holds it and there is no base (a rename git could not settle)"
            )
        if ours == theirs:
            return Resolution(path, "both sides added the same version; took it", (ours,))
        return _both_added(path, ours, theirs, sides, next_free, copy_of=copy_of)
    if _sealed(base):
        return _sealed_at_base(path, base, ours, theirs, sides)
    if ours is None or theirs is None:
        return _deleted_on_one_side(path, base, ours, theirs, sides)
    if ours == theirs:
        return Resolution(path, "both sides made the same change; took it", (ours,))
    if ours == base:
        return Resolution(path, f"took {sides.theirs} ({sides.ours} had not changed it)", (theirs,))
    if theirs == base:
        return Resolution(path, f"took {sides.ours} ({sides.theirs} had not changed it)", (ours,))
    return _both_changed(path, base, ours, theirs, sides=sides, next_free=next_free)


def _decode(
    conflict: Conflict, data: bytes | None, side: str, problems: list[str], *, stored: bool = True
) -> StrategyDocument | None:
    """The document a stage holds; a problem with it is added to ``problems``.

    Stored stages follow the rules of a stored file. The base is only compared
    with, never written, so it is read as any document is (a format-1 file,
    which states no seal, included).
    """
    if data is None:
        return None
    try:
        doc = decode_document_file(data) if stored else StrategyDocument.from_json_bytes(data)
    except DocumentFileError as exc:
        problems.append(f"{side} is not a valid document: {exc.reason}")
        return None
    except ValidationError as exc:
        problems.append(f"{side} is not a valid document: {describe_invalid(data, exc)}")
        return None
    wrong = misplacement(doc, conflict.brief_id, conflict.version)
    if wrong is not None:
        problems.append(f"{side} {wrong}")
        return None
    return doc


def _sealed(doc: StrategyDocument) -> bool:
    return doc.status is not Status.DRAFT


def _both_added(
    path: str,
    ours: StrategyDocument,
    theirs: StrategyDocument,
    sides: Sides,
    next_free: Allocator,
    *,
    copy_of: Callable[[StrategyDocument], int | None] | None = None,
) -> Resolution:
    version = ours.version
    opening = f"both sides added version {version}"
    if seal_of(ours) == seal_of(theirs) and _sealed(ours) is not _sealed(theirs):
        sealed, name = (ours, sides.ours) if _sealed(ours) else (theirs, sides.theirs)
        return Resolution(
            path,
            f"{opening} with the same content; kept the {sealed.status.value} one ({name})",
            (sealed,),
        )
    if ours.created_at != theirs.created_at:
        ours_keeps = ours.created_at < theirs.created_at
        why = "created earlier"
    else:
        ours_keeps = sides.ours_is_current
        why = "created at the same moment; the current branch keeps the number"
    keeper, mover = (ours, theirs) if ours_keeps else (theirs, ours)
    if _sealed(mover):
        if _sealed(keeper):
            return Resolution.leave(
                path,
                f"{opening} and both sealed it ({ours.status.value} on {sides.ours}, "
                f"{theirs.status.value} on {sides.theirs}); only drafts are renumbered",
            )
        keeper, mover = mover, keeper
        ours_keeps = not ours_keeps
        why = f"{keeper.status.value}; only drafts are renumbered"
    names = (sides.ours, sides.theirs)
    keeper_name, mover_name = names if ours_keeps else names[::-1]
    copy = None if copy_of is None else copy_of(mover)
    if copy is not None:
        return Resolution(
            path,
            f"{opening}; kept {keeper_name} ({why}); {mover_name}'s is version {copy} already "
            "(the same draft, brought over before), so it is not added again",
            (keeper,),
        )
    try:
        moved = renumbered(mover, next_free(mover.brief_id))
    except ValueError as exc:
        return Resolution.leave(path, f"{opening}: {exc}")
    return Resolution(
        path,
        f"{opening}; kept {keeper_name} ({why}) and renumbered {mover_name} "
        f"{version} → {moved.version}",
        (keeper, moved),
    )


def _deleted_on_one_side(
    path: str,
    base: StrategyDocument,
    ours: StrategyDocument | None,
    theirs: StrategyDocument | None,
    sides: Sides,
) -> Resolution:
    if ours is None and theirs is None:
        return Resolution(path, "deleted on both sides", remove=True)
    kept, deleter, keeper = (
        (theirs, sides.ours, sides.theirs) if ours is None else (ours, sides.theirs, sides.ours)
    )
    assert kept is not None
    if kept == base:
        return Resolution(path, f"deleted on {deleter}; {keeper} had not changed it", remove=True)
    if _sealed(kept):
        return Resolution.leave(
            path, f"the draft was deleted on {deleter} and {kept.status.value} on {keeper}"
        )
    return Resolution.leave(path, f"the draft was deleted on {deleter} and edited on {keeper}")


def _both_changed(
    path: str,
    base: StrategyDocument,
    ours: StrategyDocument,
    theirs: StrategyDocument,
    *,
    sides: Sides,
    next_free: Allocator,
) -> Resolution:
    version = base.version
    if not _sealed(ours) and not _sealed(theirs):
        merge = merge_drafts(base, ours, theirs, sides)
        if merge.document is None:
            return Resolution.leave(path, *merge.conflicts)
        return Resolution(path, _merge_account(merge, sides), (merge.document,))
    if _sealed(ours) and _sealed(theirs):
        if ours.status is theirs.status:
            how = f"{ours.status.value} on both sides, differently"
        else:
            how = f"{ours.status.value} on {sides.ours}, {theirs.status.value} on {sides.theirs}"
        return Resolution.leave(path, f"version {version} was sealed on both sides ({how})")
    sealed, draft, sealer, editor = (
        (ours, theirs, sides.ours, sides.theirs)
        if _sealed(ours)
        else (theirs, ours, sides.theirs, sides.ours)
    )
    status = sealed.status.value
    if seal_of(sealed) != seal_of(base):
        return Resolution.leave(
            path,
            f"{sealer} changed version {version} and {status} it, while {editor} edited it",
        )
    if seal_of(draft) == seal_of(base):
        return Resolution(
            path, f"kept the {status} version ({sealer}); {editor} changed no content", (sealed,)
        )
    if draft.created_at != base.created_at:
        return Resolution.leave(path, other_document(draft, base, editor))
    try:
        edit = renumbered(draft, next_free(draft.brief_id))
    except ValueError as exc:
        return Resolution.leave(path, f"the edit on {editor} cannot be kept: {exc}")
    return Resolution(
        path,
        f"kept the {status} version ({sealer}) and saved the edit ({editor}) "
        f"as version {edit.version}",
        (sealed, edit),
    )


def _sealed_at_base(
    path: str,
    base: StrategyDocument,
    ours: StrategyDocument | None,
    theirs: StrategyDocument | None,
    sides: Sides,
) -> Resolution:
    """A version sealed at the base: only a side that withdrew it (or left it) is taken."""
    where = f"version {base.version} is {base.status.value} at the base"
    wrong = [
        f"{name} {_sealed_change(base, side)}"
        for side, name in ((ours, sides.ours), (theirs, sides.theirs))
        if side is None or (side != base and not _follows(base, side))
    ]
    if wrong:
        return Resolution.leave(
            path,
            f"{where} and {' and '.join(wrong)}: "
            "a sealed version is never changed or deleted, only withdrawn",
        )
    assert ours is not None and theirs is not None
    if ours == theirs:
        return Resolution(path, "both sides made the same change; took it", (ours,))
    if ours == base:
        return Resolution(path, f"took {sides.theirs} ({sides.ours} had not changed it)", (theirs,))
    if theirs == base:
        return Resolution(path, f"took {sides.ours} ({sides.theirs} had not changed it)", (ours,))
    return Resolution.leave(
        path,
        f"{where} and both sides changed its status differently ({sides.ours}: "
        f"{_status_of(ours)}; {sides.theirs}: {_status_of(theirs)})",
    )


def _status_of(doc: StrategyDocument) -> str:
    reason = f", reason {doc.status_reason!r}" if doc.status_reason is not None else ""
    return f"{doc.status.value} at {iso(doc.updated_at)}{reason}"


def _follows(base: StrategyDocument, side: StrategyDocument) -> bool:
    """Whether ``side`` is what the store may make of the sealed ``base``: it, or it withdrawn."""
    return (
        _sealed(side)
        and seal_of(side) == seal_of(base)
        and (
            side.status is base.status
            or (base.status is Status.APPROVED and side.status is Status.WITHDRAWN)
        )
    )


def _sealed_change(base: StrategyDocument, side: StrategyDocument | None) -> str:
    """How one side changed a version that was sealed at the base."""
    if side is None:
        return "deleted it"
    if side.status is Status.DRAFT:
        return "put it back to draft"
    if seal_of(side) != seal_of(base):
        return "changed its sealed content"
    if side.status is not base.status:
        return f"made it {side.status.value}"
    return "changed its status reason or time"


def _merge_account(merge: DraftMerge, sides: Sides) -> str:
    ours = ", ".join(merge.ours_changes)
    theirs = ", ".join(merge.theirs_changes)
    if ours and theirs:
        return f"merged {sides.ours} ({ours}) with {sides.theirs} ({theirs})"
    if ours or theirs:
        name, what = (sides.ours, ours) if ours else (sides.theirs, theirs)
        return f"merged: {name} changed {what}, the other side only its time"
    return "merged: both sides changed only its time"
