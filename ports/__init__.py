"""DiscomfortPort and the pure functions that find ports and their modes in a graph."""

from .discovery import (
    PORT_CLASS,
    Interface,
    Port,
    PortMode,
    execution_order,
    find_ports,
    interface,
    parse_tags,
    validate_ports,
)

__all__ = [
    "PORT_CLASS",
    "Interface",
    "Port",
    "PortMode",
    "execution_order",
    "find_ports",
    "interface",
    "parse_tags",
    "validate_ports",
]
