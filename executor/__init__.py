"""Running graphs on ComfyUI: the embedded runtime, and (built on it) the loop engine.

Modules here import ComfyUI only inside functions, so importing the package works before ComfyUI is booted.
"""
