"""Load demo data: the catalog, an operator admin and a demo customer. Safe to run twice.

It creates what is missing and changes nothing that exists (`make run` runs it on every start:
a limit, a price or a region that staff or the demo customer changed stays as they left it).
"""

from decimal import Decimal

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand
from django.db import transaction

from portal.accounts.models import User
from portal.catalog.models import GpuModel, Image, InstanceType, Price, Region, StoragePrice
from portal.orgs.models import Membership, Organization
from portal.orgs.roles import Role
from portal.quotas.demo import seed_quotas

ADMIN_EMAIL = "admin@backfill.localhost"
ADMIN_PASSWORD = "backfill-admin-demo"
CUSTOMER_EMAIL = "demo@backfill.localhost"
CUSTOMER_PASSWORD = "backfill-demo-customer"

REGIONS = [
    ("us-east-1", "US East", "Ashburn, Virginia"),
    ("eu-west-1", "EU West", "Dublin, Ireland"),
]
GPU_MODELS = [
    ("h100", "NVIDIA H100 80GB SXM", 80),
    ("a100", "NVIDIA A100 80GB SXM", 80),
    ("l40s", "NVIDIA L40S 48GB", 48),
]
# code, name, gpu, count, vcpus, memory, disk, on-demand, preemptible, stopped (per hour)
INSTANCE_TYPES = [
    ("gpu_1x_h100", "1x H100 80GB", "h100", 1, 26, 225, 2750, "2.49", "1.29", "0.02"),
    ("gpu_8x_h100", "8x H100 80GB", "h100", 8, 208, 1800, 22000, "19.92", "10.32", "0.16"),
    ("gpu_8x_a100", "8x A100 80GB", "a100", 8, 240, 1800, 20000, "14.32", "7.20", "0.14"),
    ("gpu_1x_l40s", "1x L40S 48GB", "l40s", 1, 16, 120, 1000, "0.99", "0.49", "0.01"),
]
IMAGES = [
    (
        "ubuntu-22.04-cuda-12.4",
        "Ubuntu 22.04 + CUDA 12.4",
        "Ubuntu 22.04 LTS with NVIDIA driver 550 and CUDA 12.4.",
    ),
    (
        "pytorch-2.5-cuda-12.4",
        "PyTorch 2.5 (CUDA 12.4)",
        "Ubuntu 22.04 with PyTorch 2.5, cuDNN 9 and NCCL, ready for training.",
    ),
    (
        "ubuntu-24.04-cuda-12.6",
        "Ubuntu 24.04 + CUDA 12.6",
        "Ubuntu 24.04 LTS with NVIDIA driver 560 and CUDA 12.6.",
    ),
]


class Command(BaseCommand):
    help = "Load demo data (catalog, operator admin, demo customer). Idempotent."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        regions = {
            code: Region.objects.get_or_create(
                code=code, defaults={"name": name, "location": location, "active": True}
            )[0]
            for code, name, location in REGIONS
        }
        gpus = {
            code: GpuModel.objects.get_or_create(
                code=code, defaults={"name": name, "memory_gb": memory}
            )[0]
            for code, name, memory in GPU_MODELS
        }
        for code, name, gpu, count, vcpus, mem, disk, od, pre, stopped in INSTANCE_TYPES:
            instance_type, created = InstanceType.objects.get_or_create(
                code=code,
                defaults={
                    "name": name,
                    "gpu_model": gpus[gpu],
                    "gpu_count": count,
                    "vcpus": vcpus,
                    "memory_gb": mem,
                    "local_disk_gb": disk,
                    "active": True,
                },
            )
            if created:
                instance_type.regions.set(regions.values())
            if not instance_type.prices.exists():
                Price.objects.create(
                    instance_type=instance_type,
                    valid_from="2026-01-01T00:00:00Z",
                    on_demand_hourly=Decimal(od),
                    preemptible_hourly=Decimal(pre),
                    stopped_hourly=Decimal(stopped),
                )
        for region in regions.values():
            if not region.storage_prices.exists():
                StoragePrice.objects.create(
                    region=region,
                    valid_from="2026-01-01T00:00:00Z",
                    per_gb_month=Decimal("0.20"),
                )
        for code, name, description in IMAGES:
            Image.objects.get_or_create(
                code=code, defaults={"name": name, "description": description, "active": True}
            )

        admin = self._user(ADMIN_EMAIL, ADMIN_PASSWORD, "Operator Admin", staff=True)
        customer = self._user(CUSTOMER_EMAIL, CUSTOMER_PASSWORD, "Dana Demo")
        organization, _ = Organization.objects.get_or_create(
            slug="acme-ai", defaults={"name": "Acme AI Research", "created_by": customer}
        )
        Membership.objects.get_or_create(
            organization=organization, user=customer, defaults={"role": Role.OWNER}
        )
        seed_quotas(organization=organization)
        self.stdout.write(self.style.SUCCESS("Demo data loaded."))
        self.stdout.write(f"  operator admin: {admin.email} / {ADMIN_PASSWORD}")
        self.stdout.write(f"  demo customer:  {customer.email} / {CUSTOMER_PASSWORD}")

    def _user(self, email: str, password: str, name: str, staff: bool = False) -> User:
        user, created = User.objects.get_or_create(
            email=email,
            defaults={"full_name": name, "is_staff": staff, "is_superuser": staff},
        )
        if created:
            user.set_password(password)
            user.save(update_fields=["password"])
        EmailAddress.objects.get_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
        return user
