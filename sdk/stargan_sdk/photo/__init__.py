"""Photos rather than aligned faces: face detection, the crop, paste-back and the framing rule.

Usage: from stargan_sdk.photo.faces import detect_faces
"""
