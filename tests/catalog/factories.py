from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from portal.catalog.models import GpuModel, Image, InstanceType, Price, Region


class RegionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Region
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"region-{n}")
    name = factory.Sequence(lambda n: f"Region {n}")
    location = "Somewhere"
    active = True


class GpuModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GpuModel
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"gpu-{n}")
    name = factory.Sequence(lambda n: f"GPU {n}")
    memory_gb = 80


class InstanceTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InstanceType
        skip_postgeneration_save = True

    code = factory.Sequence(lambda n: f"type_{n}")
    name = factory.Sequence(lambda n: f"Type {n}")
    gpu_model = factory.SubFactory(GpuModelFactory)
    gpu_count = 1
    vcpus = 16
    memory_gb = 128
    local_disk_gb = 1000
    active = True

    @factory.post_generation
    def regions(self, create, extracted, **kwargs):
        if create and extracted:
            self.regions.set(extracted)


class PriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Price

    instance_type = factory.SubFactory(InstanceTypeFactory)
    valid_from = factory.LazyFunction(lambda: timezone.now() - timedelta(days=30))
    on_demand_hourly = Decimal("2.49")
    preemptible_hourly = Decimal("1.29")
    stopped_hourly = Decimal("0.02")


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Image

    code = factory.Sequence(lambda n: f"image-{n}")
    name = factory.Sequence(lambda n: f"Image {n}")
