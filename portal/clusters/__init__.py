"""Clusters: N nodes of one type on one fabric, launched, stopped and ended as one (issue 17)."""
