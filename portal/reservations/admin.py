"""Reserved capacity in Django admin: reservations (made and cancelled by staff) and
customers' requests (quoted or refused). Every change goes through the services."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from portal.accounts.http import AuthenticatedRequest
from portal.lib.errors import ApplicationError
from portal.reservations import selectors, services
from portal.reservations.forms import QuoteForm, ReservationForm
from portal.reservations.models import Reservation, ReservationRequest
from portal.web.admin import admin_form_page
from portal.web.forms import form_add_application_error


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = [
        "label",
        "organization",
        "region",
        "gpu_model",
        "gpus",
        "start",
        "end",
        "price_per_gpu_hour",
        "status",
        "backend_held_at",
    ]
    list_filter = ["region", "gpu_model"]
    search_fields = ["organization__name"]
    list_select_related = ["organization", "region", "gpu_model"]
    actions = ["cancel"]
    readonly_fields = [f.name for f in Reservation._meta.fields]

    @admin.display(description="reservation", ordering="pk")
    def label(self, obj: Reservation) -> str:
        return f"R-{obj.pk}"

    @admin.display(description="status")
    def status(self, obj: Reservation) -> str:
        return obj.status(timezone.now())

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        own = [
            path(
                "create/",
                self.admin_site.admin_view(self.create_view),
                name="reservations_reservation_create",
            )
        ]
        return own + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:reservations_reservation_create"))

    def create_view(self, request: AuthenticatedRequest):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ReservationForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                reservation = services.reservation_create(by=request.user, **data)
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                self.message_user(request, f"Reservation R-{reservation.pk} created.", "success")
                return HttpResponseRedirect(reverse("admin:reservations_reservation_changelist"))
        return admin_form_page(
            request,
            self,
            title="Reserve capacity",
            form=form,
            intro="The GPUs are held for the organization from start to end and billed at the "
            "committed price whether used or not. Refused if, with the other reservations of "
            "that period, more GPUs would be reserved than the fleet has.",
        )

    @admin.action(description="Cancel the selected reservations")
    def cancel(self, request, queryset):
        for reservation in queryset:
            try:
                services.reservation_cancel(reservation=reservation, by=request.user)
            except ApplicationError as error:
                self.message_user(request, f"R-{reservation.pk}: {error.message}", "warning")
            else:
                self.message_user(request, f"R-{reservation.pk} cancelled.", "success")


@admin.register(ReservationRequest)
class ReservationRequestAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "state",
        "gpus",
        "start_date",
        "months",
        "quote_price",
        "created_at",
        "quote_link",
    ]
    list_filter = ["state", "region", "gpu_model"]
    search_fields = ["organization__name"]
    list_select_related = ["organization", "region", "gpu_model"]
    readonly_fields = [f.name for f in ReservationRequest._meta.fields]
    actions = ["refuse"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="")
    def quote_link(self, obj: ReservationRequest) -> str:
        if not obj.is_open:
            return ""
        return format_html(
            '<a href="{}">Quote…</a>',
            reverse("admin:reservations_reservationrequest_quote", args=[obj.pk]),
        )

    def get_urls(self):
        own = [
            path(
                "<int:pk>/quote/",
                self.admin_site.admin_view(self.quote_view),
                name="reservations_reservationrequest_quote",
            )
        ]
        return own + super().get_urls()

    def quote_view(self, request: HttpRequest, pk: int):
        if not request.user.is_staff:
            raise PermissionDenied
        item = get_object_or_404(
            ReservationRequest.objects.select_related("organization", "region", "gpu_model"), pk=pk
        )
        start, end = services.request_period(item.start_date, item.months)
        reservable = selectors.reservable_gpus(
            region=item.region, gpu_model=item.gpu_model, start=start, end=end
        )
        form = QuoteForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                services.reservation_request_quote(
                    reservation_request=item,
                    price_per_gpu_hour=form.cleaned_data["price_per_gpu_hour"],
                    note=form.cleaned_data["note"],
                    valid_until=form.cleaned_data["valid_until"],
                    by=request.user,
                )
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                self.message_user(request, f"Quote sent for request #{item.pk}.", "success")
                return HttpResponseRedirect(
                    reverse("admin:reservations_reservationrequest_changelist")
                )
        free = "unknown (no capacity report yet)" if reservable is None else str(reservable)
        return admin_form_page(
            request,
            self,
            title=f"Quote request #{item.pk}",
            form=form,
            intro=(
                f"{item.organization} asks for {item.gpus} {item.gpu_model} GPUs in "
                f"{item.region.code} from {start:%Y-%m-%d} to {end:%Y-%m-%d} "
                f"({item.months} months). Reservable over that period: {free} GPUs."
            ),
        )

    @admin.action(description="Refuse the selected requests")
    def refuse(self, request, queryset):
        for item in queryset:
            try:
                services.reservation_request_refuse(reservation_request=item, by=request.user)
            except ApplicationError as error:
                self.message_user(request, f"#{item.pk}: {error.message}", "warning")
