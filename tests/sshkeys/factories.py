"""SshKeyFactory: a real, fresh ed25519 key per row, so fingerprints never collide."""

import factory

from portal.lib.sshkey import parse_public_key
from portal.sshkeys.models import SshKey
from tests.factories import MembershipFactory
from tests.lib.keys import public_line


class SshKeyFactory(factory.django.DjangoModelFactory):
    """`SshKeyFactory(membership=m)` for a personal key, `shared=True` for a shared one."""

    class Meta:
        model = SshKey
        exclude = ["membership", "shared", "parsed"]

    membership = factory.SubFactory(MembershipFactory)
    shared = False
    parsed = factory.LazyFunction(lambda: parse_public_key(public_line(comment="test")))

    organization = factory.SelfAttribute("membership.organization")
    user = factory.LazyAttribute(lambda o: None if o.shared else o.membership.user)
    created_by = factory.SelfAttribute("membership.user")
    name = factory.Sequence(lambda n: f"key {n}")
    public_key = factory.SelfAttribute("parsed.normalized")
    key_type = factory.SelfAttribute("parsed.key_type")
    bits = factory.SelfAttribute("parsed.bits")
    fingerprint = factory.SelfAttribute("parsed.fingerprint")
