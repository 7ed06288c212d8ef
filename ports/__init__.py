"""DiscomfortPort and the pure functions that find ports, their modes and their roles in a graph."""

from .discovery import PORT_CLASS, Port, PortMode, Role, parse_tags
from .model import Interface, LoopBody, PortGraph, execution_order, find_ports, interface, validate_ports

__all__ = [
    "PORT_CLASS",
    "Interface",
    "LoopBody",
    "Port",
    "PortGraph",
    "PortMode",
    "Role",
    "execution_order",
    "find_ports",
    "interface",
    "parse_tags",
    "validate_ports",
]
