"""Floors for the page benchmark: what a page costs before it shows any domain data."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
def floor(request: HttpRequest) -> HttpResponse:
    """The cheapest authenticated page: the console layout (app.html), no domain data."""
    return render(request, "app.html")


def constant(request: HttpRequest) -> HttpResponse:
    """A constant answer without the database: the cost of the stack itself."""
    return HttpResponse(b"ok\n", content_type="text/plain")
