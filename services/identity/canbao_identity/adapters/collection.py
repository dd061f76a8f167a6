"""collection — an approved collection (registry.collections, domain.md §2.2-2.3): what a clerk,
a surveyor or the person entered and the agency approved, as a source record of its own (system
`collection`, table its channel), first in precedence (golden.py). Its provenance (who handled
and reviewed it, when) travels beside the record, for the history and the write-back."""

from __future__ import annotations

from typing import Any

from canbao_contracts.codes import SourceSystem
from canbao_contracts.events import CollectionApproved
from canbao_identity import records as r
from canbao_identity.records import SourceRecord


def approved(event: CollectionApproved) -> SourceRecord:
    """The collection's items as claims under the items' own names; its values close the gaps
    they fill."""
    claims: dict[str, Any] = {r.DOCUMENT_TYPE: event.document_type.value}
    for item, value in event.items.items():
        if item in r.CLAIMED_ITEMS:
            claims[r.CLAIMED_ITEMS[item]] = value
    if birth := claims.get(r.BIRTH_DATE):  # YYYYMMDD, as entered → ISO, as every source's
        claims[r.BIRTH_DATE] = f"{birth[:4]}-{birth[4:6]}-{birth[6:8]}"
    if event.region_code is not None:  # where a newcomer lives and registered
        claims[r.REGION] = event.region_code
    return SourceRecord(SourceSystem.COLLECTION.value, event.channel.value, claims=claims)


def provenance(event: CollectionApproved) -> dict[str, Any]:
    """Channel, handler and reviewers of the collection, JSON-ready."""
    return {
        "channel": event.channel.value,
        "handler": event.handler,
        "handled_at": event.handled_at.isoformat(),
        "reviewer": event.reviewer,
        "reviewed_at": event.reviewed_at.isoformat(),
        "first_reviewer": event.first_reviewer,
        "collection_id": str(event.collection_id),
    }
