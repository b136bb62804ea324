"""The operator's side reads the other apps' tables (overview, the customer page) and acts
through their services (suspensions, staff actions on instances). Its one table of its own:
the support desk's notes about a customer."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class StaffNote(models.Model):
    """A note staff keep about a customer organization (what was agreed on a call, a warning
    for the next person on the desk). Shown on the customer page, newest first."""

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="staff_notes"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_email = models.EmailField(blank=True)  # kept when the author's account is gone
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"note on {self.organization_id} by {self.author_email}"
