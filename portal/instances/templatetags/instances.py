from django import template

from portal.instances.models import State

register = template.Library()

TONES = {
    State.RUNNING: "ok",
    State.FAILED: "danger",
    State.INTERRUPTED: "warn",
    State.STOPPED: "",
    State.TERMINATED: "",
}


@register.filter
def state_tone(state: str) -> str:
    """The badge class of a state: ok, danger, warn, info (in transition) or plain."""
    return TONES.get(state, "info")


@register.filter
def duration(seconds: int) -> str:
    """3725 -> "1 h 2 min"; 59 -> "59 s"."""
    seconds = int(seconds or 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"
