"""What the orgs app announces, for apps above it to react to (they connect receivers in
their AppConfig.ready()). Sent inside the transaction that makes the change."""

from django.dispatch import Signal

# An organization was suspended: `organization`, `suspension`, `by` (the staff member).
# The instances app stops its running instances when `suspension.stop_instances` is set.
organization_suspended = Signal()
