"""The streaming pipeline: files (or in-memory images) in, edited files out, stages overlapped.

Usage: for r in translator.translate_files(paths, "out/", {"Blond_Hair": 1}): print(r.source, r.output or r.error)
"""
