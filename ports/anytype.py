"""The wildcard socket type.

ComfyUI 0.3.75 compares socket types with ``!=`` and has no ``"*"`` wildcard, so a plain ``"*"`` output linked
into an IMAGE input fails validation. A str whose ``__ne__`` is always False matches every type there and on
newer ComfyUI, which accepts ``"*"`` natively.
"""

from __future__ import annotations


class AnyType(str):
    def __ne__(self, other: object) -> bool:
        return False


ANY = AnyType("*")
