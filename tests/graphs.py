"""Small API prompts the tests share."""

from __future__ import annotations

COLOR = 0x336699  # EmptyImage's color widget: 0xRRGGBB


def invert_through_port(prefix: str, color: int = COLOR) -> dict:
    """EmptyImage -> DiscomfortPort (PASSTHRU) -> ImageInvert -> SaveImage."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": color}},
        "2": {"class_type": "DiscomfortPort", "inputs": {"unique_id": "image", "tags": "", "value": ["1", 0]}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": prefix}},
    }


def rgb(color: int) -> tuple[int, int, int]:
    return (color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF


def assert_inverted(pixel: tuple[int, ...], color: int = COLOR) -> None:
    # ComfyUI stores 8-bit colors as float32 and truncates on save, so 255 - c can come out one lower.
    for got, original in zip(pixel[:3], rgb(color), strict=True):
        assert 255 - original - 1 <= got <= 255 - original, f"pixel {pixel[:3]} is not the inverse of {rgb(color)}"
