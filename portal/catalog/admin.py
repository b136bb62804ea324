from django.contrib import admin

from portal.catalog.models import GpuModel, Image, InstanceType, Price, Region, StoragePrice


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "location", "active"]
    list_filter = ["active"]
    search_fields = ["code", "name"]


@admin.register(GpuModel)
class GpuModelAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "memory_gb"]
    search_fields = ["code", "name"]


class PriceInline(admin.TabularInline):
    """Prices are history: a change is a new row; existing rows cannot be edited or deleted."""

    model = Price
    extra = 0
    fields = ["valid_from", "on_demand_hourly", "preemptible_hourly", "stopped_hourly", "currency"]
    readonly_fields = ["created_at"]
    can_delete = False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class NewPriceInline(admin.TabularInline):
    model = Price
    extra = 1
    max_num = 1
    fields = ["valid_from", "on_demand_hourly", "preemptible_hourly", "stopped_hourly", "currency"]
    verbose_name = "new price"
    verbose_name_plural = "Add a price (takes effect at its start; older prices stay)"
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).none()


@admin.register(InstanceType)
class InstanceTypeAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "gpu_model", "gpu_count", "vcpus", "memory_gb", "active"]
    list_filter = ["active", "gpu_model", "regions"]
    search_fields = ["code", "name"]
    filter_horizontal = ["regions"]
    inlines = [PriceInline, NewPriceInline]


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    list_display = ["instance_type", "valid_from", "on_demand_hourly", "preemptible_hourly"]
    list_filter = ["instance_type"]
    date_hierarchy = "valid_from"

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(StoragePrice)
class StoragePriceAdmin(admin.ModelAdmin):
    """Volume storage per GB-month and region; added, never changed (past usage keeps its
    price)."""

    list_display = ["region", "valid_from", "per_gb_month", "currency"]
    list_filter = ["region"]
    date_hierarchy = "valid_from"

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "active"]
    list_filter = ["active"]
    search_fields = ["code", "name"]
