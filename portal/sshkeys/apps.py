from django.apps import AppConfig


class SshKeysConfig(AppConfig):
    name = "portal.sshkeys"
    label = "sshkeys"
    verbose_name = "SSH keys"
