from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from portal.notifications.mailsink import read_messages


@staff_member_required
def mail_sink(request: HttpRequest) -> HttpResponse:
    """The development SMTP sink's messages, for staff (make run)."""
    messages_ = read_messages(settings.MAIL_SINK_DIR)
    selected = None
    key = request.GET.get("m")
    if key:
        selected = next((m for m in messages_ if m.key == key), None)
        if selected is None:
            raise Http404
    return render(
        request,
        "notifications/mail_sink.html",
        {"sunk_messages": messages_, "selected": selected, "sink_dir": settings.MAIL_SINK_DIR},
    )
