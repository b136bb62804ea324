"""The SSH key list's row tag prints exactly what the template code it replaced did."""

from datetime import UTC, datetime

import pytest
from django.template import Context, Template
from django.utils import timezone, translation

from portal.accounts.models import User
from portal.sshkeys.models import SshKey

# The row as the SSH key page's template wrote it before the tag (without the whitespace
# between cells, which the page does not show).
OLD_ROW = (
    "<tr><td><strong>{{ key.name }}</strong>{% if key.comment %}<br>"
    '<span class="muted" style="font-size:.82rem">{{ key.comment|truncatechars:40 }}</span>'
    "{% endif %}</td>"
    '<td class="hide-sm"><span class="badge">{{ key.type_label }}</span></td>'
    '<td><span class="mono" title="{{ key.public_key }}">{{ key.fingerprint }}</span></td>'
    '<td style="white-space:nowrap">{% if key.is_shared %}<span class="badge accent">shared'
    '</span>{% elif key.user_id == user.id %}<span class="badge">you</span>{% else %}'
    '<span title="{{ key.user.email }}">{{ key.user.display_name }}</span>{% endif %}</td>'
    '<td class="hide-sm muted" style="white-space:nowrap">{{ key.created_at|date:"M j, Y" }}'
    "</td>"
    '<td class="num">{% if key.pk in deletable %}<a class="btn danger outline small" '
    "href=\"{% url 'sshkeys:delete' current_organization.slug key.pk %}\" "
    'aria-label="Delete {{ key.name }}">Delete</a>{% endif %}</td></tr>'
)
NEW_ROW = "{% load sshkeys %}{% sshkey_row key current_organization.slug deletable %}"

VIEWER = User(id=1, email="ana@example.com", full_name="Ana")
OTHER = User(id=2, email='bo"<b>@example.com', full_name="")
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"

KEYS = {
    "a shared key with a long comment": dict(
        pk=7,
        name="deploy",
        user=None,
        public_key=f"{ED25519} ci@build-runner-{'x' * 40}",
        key_type="ssh-ed25519",
        bits=256,
    ),
    "the viewer's own RSA key, no comment": dict(
        pk=8, name="laptop", user=VIEWER, public_key=ED25519, key_type="ssh-rsa", bits=4096
    ),
    "another member's key, markup in its texts": dict(
        pk=987654321123,
        name='<script>"x"</script>',
        user=OTHER,
        public_key=f"{ED25519} zoë@hôte-ünïcode-ñame-long-enough-to-cut",
        key_type="ecdsa-sha2-nistp384",
        bits=384,
    ),
}


def rendered(source: str, key: SshKey, deletable: set[int]) -> str:
    context = {
        "key": key,
        "user": VIEWER,
        "current_organization": {"slug": "acme-987654321123"},
        "deletable": deletable,
    }
    return Template(source).render(Context(context))


@pytest.mark.parametrize("case", KEYS)
@pytest.mark.parametrize("deletable", [True, False])
@pytest.mark.parametrize("zone,language", [("UTC", "en"), ("Pacific/Auckland", "fr")])
def test_an_ssh_key_row_reads_as_the_template_wrote_it(case, deletable, zone, language):
    key = SshKey(
        created_at=datetime(2026, 5, 31, 13, 0, tzinfo=UTC),
        fingerprint="SHA256:abc+/def",
        **KEYS[case],
    )
    ids = {key.pk} if deletable else set()
    with timezone.override(zone), translation.override(language):
        assert rendered(NEW_ROW, key, ids) == rendered(OLD_ROW, key, ids)


def test_each_row_links_to_deleting_its_own_key():
    keys = [
        SshKey(
            created_at=datetime(2026, 5, 31, tzinfo=UTC),
            **KEYS["a shared key with a long comment"] | {"pk": pk},
        )
        for pk in (3, 41)
    ]
    source = (
        "{% load sshkeys %}{% for key in keys %}{% sshkey_row key 'acme' deletable %}{% endfor %}"
    )
    page = Template(source).render(Context({"keys": keys, "user": VIEWER, "deletable": {3, 41}}))
    assert 'href="/o/acme/ssh-keys/3/delete/"' in page
    assert 'href="/o/acme/ssh-keys/41/delete/"' in page
