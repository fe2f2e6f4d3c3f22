"""Pre- and post-processing at the engine boundary: image codecs and conversions, target labels, figures.

Usage: from stargan_sdk.images.imaging import to_model_rgb, save_image
"""
