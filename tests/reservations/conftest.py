"""The operator's fixtures (staff, a fleet snapshot) and the instances app's catalog."""

from tests.operations.conftest import (  # noqa: F401
    catalog,
    eager,
    fleet,
    launch,
    make_instance,
    quota,
    simulator,
    simulator_process,
    ssh_key,
    staff,
    store_fleet,
)
