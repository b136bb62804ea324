from django import template

register = template.Library()


@register.filter
def gigabytes(value: int) -> str:
    """Memory and disk sizes: `225` → `225 GB`, `22000` → `22 TB`."""
    if value >= 1000 and value % 1000 == 0:
        return f"{value // 1000} TB"
    if value >= 1000:
        return f"{value / 1000:.1f} TB"
    return f"{value} GB"


@register.filter
def note_for(notes: dict, instance_type_id: int) -> str:
    """The catalog page's note on an offer (portal.catalog.insights), or ""."""
    return notes.get(instance_type_id, "") if notes else ""
