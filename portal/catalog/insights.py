"""Notes on offers that apps above the catalog know (the interruption rate of preemptible
offers, from portal.instances): they register a function in their AppConfig.ready(), which is
how the catalog page asks a higher layer without importing it.

    offer_note_register(interruption_notes)

A function takes the instance type ids on the page and the region filtered on (or None) and
returns {instance type id: text}.
"""

from __future__ import annotations

from collections.abc import Callable

OfferNotes = Callable[[list[int], int | None], dict[int, str]]

_NOTES: list[OfferNotes] = []


def offer_note_register(notes: OfferNotes) -> None:
    if notes not in _NOTES:
        _NOTES.append(notes)


def offer_notes(type_ids: list[int], region_id: int | None) -> dict[int, str]:
    result: dict[int, str] = {}
    for notes in _NOTES:
        for type_id, text in notes(type_ids, region_id).items():
            result[type_id] = f"{result[type_id]} {text}" if type_id in result else text
    return result
