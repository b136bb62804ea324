"""What the volumes app announces, for apps above it (webhooks). Sent inside the transaction
that makes the change: `volume` (saved) and `event` ("volume.created", "volume.resized",
"volume.deleted", "volume.available", "volume.failed", "volume.lost")."""

from django.dispatch import Signal

volume_changed = Signal()
