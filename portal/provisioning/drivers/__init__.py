"""Provisioning drivers, one module (simulator) or package (slurm) each, all implementing
`ProvisioningBackend`; their HTTP goes through `portal.provisioning.transport`."""
