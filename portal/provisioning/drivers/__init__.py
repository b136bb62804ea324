"""Provisioning drivers, one module each, all implementing `ProvisioningBackend`."""
