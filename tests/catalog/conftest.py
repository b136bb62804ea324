from tests.catalog.fixtures import gpu_catalog  # noqa: F401
