"""The instances app's reactions to the apps below it, connected in InstancesConfig.ready()."""

import logging

from django.dispatch import receiver

from portal.instances import services
from portal.instances.models import Instance, State
from portal.lib.errors import ApplicationError
from portal.orgs.signals import organization_suspended

logger = logging.getLogger(__name__)

# Only a running instance can be asked to stop (lifecycle.TRANSITIONS); one that is starting or
# rebooting is left to finish: staff stop it afterwards if they must.
STOPPABLE = (State.RUNNING,)


@receiver(organization_suspended, dispatch_uid="instances-stop-on-suspension")
def stop_on_suspension(sender, organization, suspension, by, **kwargs) -> None:
    """Staff asked to stop the suspended organization's running instances (tasks do the rest)."""
    if not suspension.stop_instances:
        return
    for instance in Instance.objects.filter(organization=organization, state__in=STOPPABLE):
        try:
            services.instance_stop_by_staff(
                user=by,
                instance=instance,
                message=f"Stopped: organization suspended. {suspension.reason}",
            )
        except ApplicationError as error:  # moved on meanwhile (ended, already stopping)
            logger.info("not stopping %s on suspension: %s", instance.pk, error.message)
