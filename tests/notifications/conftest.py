from tests.catalog import fixtures

gpu_catalog = fixtures.gpu_catalog
from tests.instances.conftest import catalog, make_instance, quota  # noqa: E402, F401
from tests.operations.conftest import fleet, staff  # noqa: E402, F401
