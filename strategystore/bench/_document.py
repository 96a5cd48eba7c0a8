"""The one realistic document every measurement writes and reads, under many keys."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pydantic

from strategystore.models import Section, StrategyDocument

__all__ = [
    "BRIEF_VERSIONS",
    "LONG_BRIEF_VERSIONS",
    "METADATA",
    "TEMPLATE",
    "Maker",
    "document",
    "unvalidated_document",
]

#: Versions in each brief of the scaling data sets, and in the one long brief.
BRIEF_VERSIONS = 10
LONG_BRIEF_VERSIONS = 100

_SECTIONS = (
    (
        "summary",
        "Summary",
        "Launch the Q3 range to urban professionals aged 28 to 40 who already buy "
        "premium coffee equipment online. The campaign leads with the **grinder's "
        "consistency** and the two-year warranty, converts through the web shop and "
        "measures success by first-purchase revenue and the share of repeat buyers "
        "after ninety days. Retail partners follow in week six.",
    ),
    (
        "audience",
        "Audience",
        "Primary: home baristas who follow two or more coffee creators and have "
        "bought an espresso machine in the last two years. Secondary: gift buyers "
        "in November and December, reached through partner newsletters. Exclude "
        "existing customers from acquisition spend; retarget them with the "
        "accessory bundle instead, capped at three impressions a week.",
    ),
    (
        "positioning",
        "Positioning",
        "For people who care how their coffee tastes every single morning, the "
        "grinder is the one upgrade that changes the cup more than a new machine. "
        "Unlike entry-level burr grinders it holds its setting for months, and "
        "unlike professional ones it fits under a kitchen cabinet. Proof points: "
        "lab grind-distribution chart, three independent reviews, warranty terms.",
    ),
    (
        "channels",
        "Channels and budget",
        "- Paid social: 45 % of budget, short demo videos, creator whitelisting\n"
        "- Search: 25 %, brand plus 'best coffee grinder' terms, strict ROAS floor\n"
        "- Creators: 20 %, six mid-size partners with affiliate codes\n"
        "- Email and CRM: 10 %, launch sequence and the accessory bundle\n"
        "Budget is released in three tranches gated on cost per first purchase.",
    ),
    (
        "measurement",
        "Measurement",
        "Weekly dashboard: spend, first purchases, cost per first purchase, "
        "revenue, repeat rate at 30, 60 and 90 days. A geo holdout in two regions "
        "measures incremental lift of paid social; creator codes attribute their "
        "sales directly. Decision review at the end of week four: shift up to a "
        "third of the remaining budget towards the best channel.",
    ),
)
METADATA: dict[str, pydantic.JsonValue] = {
    "author": "planning-team",
    "model": "strategy-writer-2",
    "score": 0.82,
    "tags": ["launch", "q3", "coffee"],
    "tokens": 1834,
}
_CREATED_AT = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)

TEMPLATE = StrategyDocument(
    brief_id="bench",
    version=1,
    created_at=_CREATED_AT,
    sections=[Section(key=k, title=t, body=b) for k, t, b in _SECTIONS],
    metadata=METADATA,
)


_FIELDS = TEMPLATE.model_dump()


def document(brief_id: str, version: int) -> StrategyDocument:
    """The realistic document under another key, built as callers build theirs: validated."""
    return StrategyDocument.model_validate({**_FIELDS, "brief_id": brief_id, "version": version})


#: Makes the document of a key: ``document`` or ``unvalidated_document``.
Maker = Callable[[str, int], StrategyDocument]


def unvalidated_document(brief_id: str, version: int) -> StrategyDocument:
    """The same, made by ``model_copy(update=...)``: the store must validate it again."""
    return TEMPLATE.model_copy(update={"brief_id": brief_id, "version": version})
