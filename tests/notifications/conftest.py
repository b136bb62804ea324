from tests.catalog import fixtures

gpu_catalog = fixtures.gpu_catalog
