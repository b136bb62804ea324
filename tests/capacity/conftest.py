from tests.instances.conftest import catalog  # noqa: F401
