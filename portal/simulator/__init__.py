"""The embedded provisioning backend: a simulated GPU fleet behind a small HTTP API.

A program of its own (`python -m portal.simulator --help`); it does not use Django.
"""
