"""The request type of views that require a signed-in user (login_required, the admin's views)."""

from django.http import HttpRequest

from portal.accounts.models import User


class AuthenticatedRequest(HttpRequest):
    """What a view behind `login_required` or the admin's `admin_view` receives (only a type: at
    run time it is Django's request, whose `user` the decorator has checked is signed in).
    """

    user: User
