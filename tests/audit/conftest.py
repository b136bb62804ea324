import pytest

from portal.audit.models import AuditEntry
from tests.factories import UserFactory

IP = "203.0.113.7"


@pytest.fixture
def staff(db):
    return UserFactory(email="ops@backfill.example", is_staff=True, is_superuser=True)


@pytest.fixture
def only(db):
    """The single entry with this action code (fails if there are none or several)."""

    def get(action: str) -> AuditEntry:
        entries = list(AuditEntry.objects.filter(action=action))
        assert len(entries) == 1, f"{len(entries)} entries for {action}: {entries}"
        return entries[0]

    return get
