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


def port(uid: str, value: list | None = None, tags: str = "loop") -> dict:
    inputs = {"unique_id": uid, "tags": tags}
    if value is not None:
        inputs["value"] = value
    return {"class_type": "DiscomfortPort", "inputs": inputs}


def loop(body: str = "loop", iterations: int = 4, uids: str = "", accumulate: str = "", stop_when: str = "",
         **values: list) -> dict:  # fmt: skip
    inputs = {"body": body, "iterations": iterations, "uids": uids, "accumulate": accumulate, "stop_when": stop_when}
    return {"class_type": "DiscomfortLoop", "inputs": {**inputs, **values}}


def loop_output(loop_id: str, name: str) -> list:
    """A link to a loop node's output socket by its name (value_1, accumulated_1, iterations)."""
    from discomfort.executor.loop_node import output_slot

    return [loop_id, output_slot(name)]


def node(class_type: str, **inputs) -> dict:
    return {"class_type": class_type, "inputs": inputs}


def empty_image(color: int = COLOR, size: int = 8) -> dict:
    return node("EmptyImage", width=size, height=size, batch_size=1, color=color)


def save(image: list, prefix: str) -> dict:
    return node("SaveImage", images=image, filename_prefix=prefix)


def assert_color(pixel: tuple[int, ...], color: int = COLOR) -> None:
    # float32 round trips (1 - (1 - c)) and truncation on save can move a channel down by one.
    for got, expected in zip(pixel[:3], rgb(color), strict=True):
        assert expected - 1 <= got <= expected, f"pixel {pixel[:3]} is not {rgb(color)}"


def nested(levels: list[tuple[str, int]]) -> tuple[dict, list]:
    """Loops levels[0] around levels[1] around ... around x += 1, each level a (body name, iterations); returns the
    prompt and a link to the result (the product of the counts). Level k's body: an entry fed from outside, the
    next loop in (or, innermost, +1), an exit."""
    prompt = {"1": node("DiscomfortTestAdd", a=0, b=0)}
    source = ["1", 0]
    for level, _ in levels:
        prompt[f"{level}_in"] = port("x", source, tags=level)
        source = [f"{level}_in", 0]
    prompt["add"] = node("DiscomfortTestAdd", a=source, b=1)
    inner = ["add", 0]
    for level, iterations in reversed(levels):
        prompt[f"{level}_out"] = port("x", inner, tags=level)
        prompt[f"{level}_loop"] = loop(body=level, iterations=iterations, uids="x")
        inner = [f"{level}_loop", 0]
    return prompt, inner


def nested_three_deep() -> tuple[dict, list]:
    """Loops a (2 iterations) around b (3) around c (2) around x += 1: 2 x 3 x 2 = 12."""
    return nested([("a", 2), ("b", 3), ("c", 2)])
