"""Pure functions over workflow dicts (API prompts and UI workflows). Nothing here imports ComfyUI."""
