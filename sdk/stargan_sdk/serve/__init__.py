"""Serving: the Triton model repository, the real Triton server behind a checking HTTP front (front, guard, stack:
supervised, graceful stop; leftovers of killed servers), and the remote client (`RemoteTranslator`).

Usage: from stargan_sdk.serve.remote import RemoteTranslator; t = RemoteTranslator.load("http://127.0.0.1:8000")
"""
