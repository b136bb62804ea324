"""Persistent volumes: storage an organization owns, attached to instances and clusters
(issue 17)."""
