"""Node definitions of the running ComfyUI, for converting UI workflows (see workflow/convert.py)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ..workflow.nodedefs import NodeDef, node_def


class LiveNodeDefs(Mapping[str, NodeDef]):
    """`nodes.NODE_CLASS_MAPPINGS` seen as NodeDefs, built on first use of each class."""

    def __init__(self) -> None:
        self._cache: dict[str, NodeDef] = {}

    def __getitem__(self, class_type: str) -> NodeDef:
        if class_type not in self._cache:
            import nodes

            node_class = nodes.NODE_CLASS_MAPPINGS[class_type]
            self._cache[class_type] = node_def(class_type, node_class.INPUT_TYPES(),
                                               getattr(node_class, "RETURN_TYPES", ()),
                                               bool(getattr(node_class, "OUTPUT_NODE", False)),
                                               getattr(node_class, "RETURN_NAMES", None) or ())  # fmt: skip
        return self._cache[class_type]

    def __contains__(self, class_type: object) -> bool:
        import nodes

        return class_type in nodes.NODE_CLASS_MAPPINGS

    def __iter__(self) -> Iterator[str]:
        import nodes

        return iter(nodes.NODE_CLASS_MAPPINGS)

    def __len__(self) -> int:
        import nodes

        return len(nodes.NODE_CLASS_MAPPINGS)
