"""Every action code the audit log knows, with the words the audit page shows for it.

A code is `<group>.<verb>`; the group is what the audit page filters on ("instance" finds every
`instance.*`). `audit_record` refuses a code that is not listed here, so that a typo fails in
the tests instead of leaving entries that no filter finds: add yours here, in your group.
"""

ACTIONS: dict[str, str] = {
    # Accounts (no organization: a person acts on their own account).
    "auth.signed_up": "Signed up",
    "auth.login": "Signed in",
    "auth.login_failed": "Failed sign-in",
    "auth.mfa_failed": "Wrong two-factor code",
    "auth.email_confirmed": "E-mail address confirmed",
    "auth.email_changed": "Primary e-mail changed",
    "auth.password_changed": "Password changed",
    "auth.password_reset": "Password reset",
    "mfa.activated": "Two-factor turned on",
    "mfa.deactivated": "Two-factor turned off",
    "mfa.recovery_codes_generated": "Recovery codes generated",
    # Organizations and people.
    "org.created": "Organization created",
    "org.renamed": "Organization renamed",
    "org.suspended": "Organization suspended",
    "org.unsuspended": "Suspension lifted",
    "member.role_changed": "Role changed",
    "member.removed": "Member removed",
    "member.left": "Member left",
    "invitation.created": "Invitation sent",
    "invitation.resent": "Invitation sent again",
    "invitation.revoked": "Invitation revoked",
    "invitation.accepted": "Invitation accepted",
    "member.joined_through_sso": "Joined through single sign-on",
    # Single sign-on.
    "sso.configured": "Identity provider saved",
    "sso.removed": "Identity provider removed",
    "sso.domain_claimed": "Domain claimed",
    "sso.domain_verified": "Domain verified by the operator",
    "sso.domain_rejected": "Domain claim rejected by the operator",
    "sso.domain_removed": "Domain claim removed",
    "sso.policy_changed": "Sign-in policy changed",
    # Access.
    "sshkey.added": "SSH key added",
    "sshkey.deleted": "SSH key deleted",
    "api_token.created": "API token created",
    "api_token.revoked": "API token revoked",
    # Machines.
    "instance.launched": "Instance launched",
    "instance.state_changed": "Instance state changed",
    "instance.action": "Instance action",
    # Quotas.
    "quota.request_submitted": "Quota request submitted",
    "quota.decided": "Quota request decided",
    "quota.limit_changed": "Quota limit changed",
    # Reserved capacity.
    "reservation.requested": "Reservation requested",
    "reservation.quoted": "Reservation quoted",
    "reservation.accepted": "Reservation quote accepted",
    "reservation.declined": "Reservation quote declined",
    "reservation.refused": "Reservation request refused",
    "reservation.created": "Reservation created",
    "reservation.cancelled": "Reservation cancelled",
    # Money.
    "invoice.issued": "Invoice issued",
    "invoice.paid": "Invoice marked paid",
    "invoice.credit_note_issued": "Credit note issued",
    "credit.granted": "Credit granted",
    "budget.changed": "Budget changed",
}

GROUPS: dict[str, str] = {
    "auth": "Sign-in and account",
    "mfa": "Two-factor",
    "org": "Organization",
    "member": "Members",
    "invitation": "Invitations",
    "sso": "Single sign-on",
    "sshkey": "SSH keys",
    "api_token": "API tokens",
    "instance": "Instances",
    "quota": "Quotas",
    "reservation": "Reservations",
    "invoice": "Invoices",
    "credit": "Credits",
    "budget": "Budget",
}


def action_label(code: str) -> str:
    return ACTIONS.get(code, code)


def action_group(code: str) -> str:
    return code.split(".", 1)[0]
