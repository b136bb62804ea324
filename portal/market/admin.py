"""The operator's controls: per offer the spot price settings, a price set by hand (audited),
and the price history (read only: rows are never rewritten)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction

from portal.audit.services import audit_record
from portal.lib.errors import ApplicationError
from portal.market import services
from portal.market.models import CapacityAlert, SpotMarket, SpotPrice
from portal.market.selectors import spot_price_current


class SpotMarketForm(forms.ModelForm):
    set_price = forms.DecimalField(
        required=False,
        max_digits=10,
        decimal_places=4,
        label="Set the price now",
        help_text="Optional: a price per hour within floor and ceiling, in force at once "
        "(recorded in the history and the audit log; the market moves it on from there).",
    )
    note = forms.CharField(required=False, max_length=200, label="Why (for the history)")

    class Meta:
        model = SpotMarket
        fields = [
            "region",
            "instance_type",
            "floor",
            "ceiling",
            "target_share",
            "max_step",
            "currency",
            "enabled",
        ]

    def clean(self):
        data = super().clean() or {}
        errors = services.spot_market_check(
            floor=data.get("floor"),
            ceiling=data.get("ceiling"),
            target_share=data.get("target_share"),
            max_step=data.get("max_step"),
        )
        for field, message in errors.items():
            self.add_error(field, message)
        try:
            services.check_currency(data.get("currency"))
        except ApplicationError as exc:
            self.add_error("currency", exc.message)
        price = data.get("set_price")
        floor, ceiling = data.get("floor"), data.get("ceiling")
        if price is not None and not errors and floor is not None and ceiling is not None:
            if not floor <= price <= ceiling:
                self.add_error(
                    "set_price",
                    f"The price must be between the floor ({floor}) and the ceiling ({ceiling}).",
                )
            elif price <= 0:
                self.add_error("set_price", "The price must be more than 0.")
        return data


@admin.register(SpotMarket)
class SpotMarketAdmin(admin.ModelAdmin):
    form = SpotMarketForm
    list_display = [
        "instance_type",
        "region",
        "current_price",
        "floor",
        "ceiling",
        "target_share",
        "max_step",
        "enabled",
    ]
    list_filter = ["enabled", "region", "instance_type"]
    fieldsets = [
        (None, {"fields": ["region", "instance_type", "currency", "enabled"]}),
        ("How the price moves", {"fields": ["floor", "ceiling", "target_share", "max_step"]}),
        ("By hand", {"fields": ["current_price", "set_price", "note"]}),
    ]
    readonly_fields = ["current_price"]

    @admin.display(description="Spot price now")
    def current_price(self, obj: SpotMarket) -> str:
        if obj.pk is None:
            return "—"
        row = spot_price_current(region_id=obj.region_id, instance_type_id=obj.instance_type_id)
        return (
            f"{row.price} {row.currency} since {row.valid_from:%Y-%m-%d %H:%M:%S}" if row else "—"
        )

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            audit_record(
                action="market.settings_changed",
                actor=request.user,
                actor_kind="staff",
                request=request,
                target=obj,
                detail={
                    "region": obj.region.code,
                    "instance_type": obj.instance_type.code,
                    "floor": str(obj.floor),
                    "ceiling": str(obj.ceiling),
                    "target_share": str(obj.target_share),
                    "max_step": str(obj.max_step),
                    "enabled": obj.enabled,
                },
            )
            price = form.cleaned_data.get("set_price")
            if price is not None:
                try:
                    row = services.spot_price_set(
                        market=obj,
                        price=price,
                        user=request.user,
                        request=request,
                        note=form.cleaned_data.get("note") or "",
                    )
                except ApplicationError as exc:
                    messages.error(request, exc.message)
                    return
                if row is not None:
                    messages.success(request, f"The spot price is now {row.price} {row.currency}.")


@admin.register(SpotPrice)
class SpotPriceAdmin(admin.ModelAdmin):
    list_display = ["instance_type", "region", "price", "valid_from", "valid_until", "reason"]
    list_filter = ["reason", "region", "instance_type"]
    date_hierarchy = "valid_from"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(CapacityAlert)
class CapacityAlertAdmin(admin.ModelAdmin):
    list_display = ["organization", "count", "instance_type", "region", "max_price", "expires_at"]
    list_filter = ["region", "instance_type"]

    def has_add_permission(self, request) -> bool:
        return False
