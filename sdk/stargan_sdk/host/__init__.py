"""This machine outside the GPU: CPU cores, backend availability, host-memory passes, atomic file writes.

Usage: from stargan_sdk.host.files import atomic_write; from stargan_sdk.host.hardware import physical_cores
"""
