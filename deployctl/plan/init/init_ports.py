"""Ports in a compose service: `ports:` (short and long syntax) and `expose:`. Pure."""

from __future__ import annotations

from typing import Any

from .init_model import with_defaults


def _first_port(text: str) -> int | None:
    text = text.split("-", 1)[0].strip()  # a range: its first port
    if text.isdigit() and 1 <= int(text) <= 65535:
        return int(text)
    return None


def parse_port(entry: Any) -> tuple[int | None, int | None]:
    """(published host port or None, container port or None) of one `ports:` entry:
    5000, "5000", "5000:5000", "127.0.0.1:8080:80", "[::1]:80:80", "80/tcp",
    "${PORT:-80}:80", or {target: 80, published: 8080}."""
    if isinstance(entry, bool):
        return None, None
    if isinstance(entry, int):
        return None, entry if 1 <= entry <= 65535 else None
    if isinstance(entry, dict):
        target = _first_port(str(entry.get("target", "")))
        published = entry.get("published")
        return (_first_port(with_defaults(str(published))[0]) if published is not None else None), target
    text, _ = with_defaults(str(entry))
    text = text.split("/", 1)[0]
    if text.startswith("["):  # an IPv6 host address
        text = text.split("]:", 1)[-1]
    parts = text.split(":")
    container = _first_port(parts[-1])
    published = _first_port(parts[-2]) if len(parts) >= 2 and parts[-2] else None
    return published, container


def container_ports(spec: dict[str, Any]) -> list[int]:
    """The ports the container listens on, from ports: then expose:, each once."""
    ports = [parse_port(p)[1] for p in spec.get("ports") or []]
    ports += [parse_port(p)[1] for p in spec.get("expose") or []]
    return list(dict.fromkeys(p for p in ports if p is not None))


def published_ports(spec: dict[str, Any]) -> list[int]:
    return [p for p in (parse_port(e)[0] for e in spec.get("ports") or []) if p is not None]
