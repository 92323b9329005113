"""Template lineage: which log template ids were merged into others or split out of them.

A log connector's miner (``connectors.logtemplates``) never changes what an id means: a merged id
keeps meaning the lines it was given (they now count with the template it merged into), and a
split gives new ids while the parent keeps its own. The miner's state says so; this module copies
it onto the ``LogTemplate`` rows (``merged_into``, ``split_from``) so that every reader (API,
admin, equipment page, diagnoses) shows an alias as pointing at its surviving template without
reading the miner's state.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from phm.telemetry.models import LogTemplate


def record_lineage(*, aliases: Mapping[str, str], splits: Mapping[str, str], using: str = "default") -> int:
    """Set ``merged_into`` / ``split_from`` on the rows named in ``aliases`` (merged id -> live
    id) and ``splits`` (new id -> parent id); returns the rows changed. All of a connector's
    lineage is passed at each checkpoint, so a row written later (a spooled batch replayed after
    the checkpoint) is set at the next one. One SELECT per checkpoint in the steady state, and one
    UPDATE per target id only for rows that are not set yet."""
    wanted: dict[str, dict[str, str]] = {}
    for field, mapping in (("split_from", splits), ("merged_into", aliases)):
        for source_id, target_id in mapping.items():
            wanted.setdefault(str(source_id), {})[field] = str(target_id)
    if not wanted:
        return 0
    stale: dict[tuple[str, str], list[str]] = defaultdict(list)
    rows = LogTemplate.objects.using(using).filter(template_id__in=list(wanted)).values_list("template_id", "merged_into", "split_from")
    for template_id, merged_into, split_from in rows.iterator():
        now = {"merged_into": merged_into, "split_from": split_from}
        for field, target_id in wanted[template_id].items():
            if now[field] != target_id:
                stale[(field, target_id)].append(template_id)
    changed = 0
    for (field, target_id), template_ids in stale.items():
        changed += LogTemplate.objects.using(using).filter(template_id__in=template_ids).update(**{field: target_id})
    return changed


def current_ids(template_ids: Iterable[str], *, using: str = "default") -> dict[str, str]:
    """Each id -> the id whose template holds its lines now (itself unless it was merged)."""
    wanted = {template_id for template_id in template_ids if template_id}
    merged = dict(
        LogTemplate.objects.using(using).filter(template_id__in=wanted).exclude(merged_into="").values_list("template_id", "merged_into")
    )
    return {template_id: merged.get(template_id, template_id) for template_id in wanted}


def ids_meaning(template_id: str, *, using: str = "default") -> list[str]:
    """``template_id`` and every id merged into it: the ids whose lines are this template's."""
    return [template_id, *LogTemplate.objects.using(using).filter(merged_into=template_id).values_list("template_id", flat=True)]


def texts_of(template_ids: Iterable[str], *, using: str = "default") -> dict[str, str]:
    """Template id -> its text, for the ids given."""
    wanted = {template_id for template_id in template_ids if template_id}
    return dict(LogTemplate.objects.using(using).filter(template_id__in=wanted).values_list("template_id", "template"))


def template_context(rows: Iterable[LogTemplate]) -> dict:
    """Serializer context for template rows: the text of each row's current template."""
    return {"texts": texts_of(row.current_id for row in rows)}


def event_context(rows: Iterable) -> dict:
    """Serializer context for log-event rows: each stored id's current id and that one's text."""
    current = current_ids(row.template_id for row in rows)
    return {"current": current, "texts": texts_of(current.values())}
