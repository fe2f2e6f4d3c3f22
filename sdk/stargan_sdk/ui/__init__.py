"""The face-editing web page (`stargan ui`): the Gradio page and the actions behind it.

Usage: stargan ui models/toyfaces-64
"""
