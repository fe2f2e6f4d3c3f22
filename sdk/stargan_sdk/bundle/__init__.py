"""The bundle format, the contract between export and SDK: names, manifest schema, artifacts, tolerances.

Usage: from stargan_sdk.bundle.manifest import read_manifest; m = read_manifest("models/toyfaces-64")
"""
