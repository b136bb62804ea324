from typing import cast

from django import forms

from portal.orgs.roles import ROLE_DESCRIPTIONS, Role, roles_assignable_by
from portal.orgs.services import NAME_MAX_LENGTH

ORGANIZATION_NAME_MAX_LENGTH = NAME_MAX_LENGTH


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=ORGANIZATION_NAME_MAX_LENGTH, label="Organization name")


class InvitationForm(forms.Form):
    email = forms.EmailField(label="E-mail address")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)

    def __init__(self, *args, actor_role: str, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["role"]).choices = [
            (r.value, r.label) for r in roles_assignable_by(actor_role)
        ]
        self.role_descriptions = [
            (r.label, ROLE_DESCRIPTIONS[r]) for r in roles_assignable_by(actor_role)
        ]


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
