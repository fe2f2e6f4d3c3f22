"""Pipelines around the Translator: the local streaming pipeline and Ray Data jobs (ray_job)."""
