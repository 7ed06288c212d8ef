"""Load on one real server: 20 looping prompts back to back, nested loops three deep, five clients at once."""

from __future__ import annotations

import io
import threading

import pytest
from graphs import loop, nested_three_deep, node, port, save
from PIL import Image

pytestmark = pytest.mark.comfy


def counting_loop(start: int, iterations: int, prefix: str) -> dict:
    """n = start; n += 1 per iteration; the result saved as a 4x4 image whose blue channel is n."""
    return {
        "1": node("DiscomfortTestAdd", a=start, b=0),
        "2": port("n", ["1", 0]),
        "3": node("DiscomfortTestAdd", a=["2", 0], b=1),
        "4": port("n", ["3", 0]),
        "10": loop(iterations=iterations, uids="n"),
        "11": node("EmptyImage", width=4, height=4, batch_size=1, color=["10", 0]),
        "12": save(["11", 0], prefix),
    }


def nested_three_deep_saved(prefix: str) -> dict:
    prompt, result = nested_three_deep()
    image = node("EmptyImage", width=4, height=4, batch_size=1, color=result)
    return {**prompt, "img": image, "save": save(["img", 0], prefix)}


def blue(client, run) -> int:
    (image,) = [i for output in run.outputs().values() for i in output.get("images", []) if i["type"] == "output"]
    with Image.open(io.BytesIO(client.view(image))) as saved:
        return saved.convert("RGB").getpixel((0, 0))[2]


def test_twenty_looping_prompts_back_to_back(client, request):
    queued = [(client.queue(counting_loop(start, 5 + start % 3, f"{request.node.name}_{start}")), start)
              for start in range(20)]  # fmt: skip
    queued.append((client.queue(nested_three_deep_saved(f"{request.node.name}_nested")), None))
    for prompt_id, start in queued:
        run = client.wait(prompt_id, timeout=180)
        assert run.status == "success", run.messages[-3:]
        assert blue(client, run) == (2 * 3 * 2 if start is None else start + 5 + start % 3)


def test_five_clients_each_see_only_their_own_prompt(server, request):
    clients = [server.client() for _ in range(5)]
    results: dict[int, object] = {}

    def work(index: int) -> None:
        client = clients[index]
        results[index] = client.run(counting_loop(index * 10, 4, f"{request.node.name}_{index}"), timeout=180)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    for index, client in enumerate(clients):
        run = results[index]
        assert run.status == "success"
        assert blue(client, run) == index * 10 + 4
        own = {data["prompt_id"] for _, data in client.received if isinstance(data, dict) and "prompt_id" in data}
        assert own == {run.prompt_id}, f"client {index} saw {own}"
        texts = [data for event, data in client.received if event == "progress_text"]
        assert texts and all(data["node_id"] == "10" for data in texts)
        assert len(texts) == 5  # iteration 0/4 .. 4/4, its own loop only
        client.close()
