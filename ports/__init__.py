"""DiscomfortPort and the pure functions that find ports and their modes in a graph."""

from .discovery import PORT_CLASS, Port, PortMode, find_ports, parse_tags, validate_ports

__all__ = ["PORT_CLASS", "Port", "PortMode", "find_ports", "parse_tags", "validate_ports"]
