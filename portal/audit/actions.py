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
    "org.two_factor_required": "Two-factor required of every member",
    "org.two_factor_optional": "Two-factor no longer required",
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
    "instance.bid_changed": "Max price per hour changed",
    "cluster.launched": "Cluster launched",
    "cluster.state_changed": "Cluster state changed",
    "cluster.action": "Cluster action",
    # Volumes.
    "volume.created": "Volume created",
    "volume.resized": "Volume resized",
    "volume.deleted": "Volume deleted",
    "volume.orphan_keep": "Orphan volume kept by staff",
    "volume.orphan_delete": "Orphan volume deleted by staff",
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
    "reservation.quote_expired": "Reservation quote expired",
    "reservation.created": "Reservation created",
    "reservation.cancelled": "Reservation cancelled",
    # Reclaims (the operator takes capacity back).
    "reclaim.policy_changed": "Reclaim policy changed",
    "reclaim.order_created": "Reclaim order made",
    "reclaim.victim_noticed": "Reclaim notice given",
    "reclaim.backend_told": "Reclaim passed to the backend",
    "reclaim.victim_ended": "Reclaimed instance ended",
    "reclaim.cancelled": "Price reclaim cancelled (max price raised)",
    "reclaim.order_done": "Reclaim order done",
    "reclaim.risk_warned": "Reclaim risk warning",
    "reclaim.shortfall_capped": "Backend shortfall capped",
    # The spot market (staff).
    "market.price_set": "Spot price set by staff",
    "market.settings_changed": "Spot price settings changed",
    # Capacity alerts.
    "capacity_alert.created": "Capacity alert created",
    "capacity_alert.removed": "Capacity alert removed",
    # Money.
    "invoice.issued": "Invoice issued",
    "invoice.paid": "Invoice marked paid",
    "invoice.overdue_reminder": "Overdue invoice reminder sent",
    "invoice.launches_paused": "Launches paused for an overdue invoice",
    "invoice.credit_note_issued": "Credit note issued",
    "credit.granted": "Credit granted",
    "budget.changed": "Budget changed",
    "budget.instances_stopped": "Instances stopped at the budget limit",
    "budget.instances_stop_noticed": "Instances told they stop at the budget limit",
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
    "cluster": "Clusters",
    "volume": "Volumes",
    "quota": "Quotas",
    "reservation": "Reservations",
    "reclaim": "Reclaims",
    "market": "Spot market",
    "capacity_alert": "Capacity alerts",
    "invoice": "Invoices",
    "credit": "Credits",
    "budget": "Budget",
}


def action_label(code: str) -> str:
    return ACTIONS.get(code, code)


def action_group(code: str) -> str:
    return code.split(".", 1)[0]
