"""Local development: `make run`. DEBUG on unless the environment says otherwise."""

from portal.lib.env import env_bool

from .base import *  # noqa: F403

DEBUG = env_bool("DJANGO_DEBUG", True)
