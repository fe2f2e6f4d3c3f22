"""`stargan-demo`: the README demo (fresh toy faces edited by the shipped bundle, with the true edits, and
the CPU benchmark). Installed with the distribution; run from the repository's root.

Usage: stargan-demo --out demo-out
"""
