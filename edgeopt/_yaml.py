"""Reading YAML files (recipes, device profiles) with errors that give the line.

Recipes and profiles come from users and from other people's repositories, so the
reader is built for hostile input: every failure is a one-line `ConfigError`, and it
fails fast instead of hanging or exhausting memory. On top of PyYAML's safe loader it
adds what PyYAML leaves out (PyYAML's own loaders have no such limits):

- a size limit, and a byte-level check for binary files (NUL bytes, not UTF-8);
- a nesting-depth limit (PyYAML's composer recurses, so 20,000 `[` hit Python's
  recursion limit);
- an alias budget: aliases share one parsed node, so `&a [*a, *a, …]` nested a few
  levels (the "billion laughs") loads in milliseconds but expands to billions of
  items as soon as anything walks it (hashing, copying, printing). The fully
  expanded size is computed over the node graph before anything is constructed, and
  a document whose aliases add more than `MAX_ALIAS_EXPANSION` to it is refused, as
  is an alias to itself (a recursive structure);
- duplicate keys in one mapping are an error (PyYAML keeps the last one silently,
  which hides typos); keys brought in by a `<<` merge may be overridden as usual.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeopt.errors import ConfigError

# Recipes and profiles are a few KiB. PyYAML's pure-Python parser (needed for the
# hooks below) takes about 3 s for 128 KiB of tiny items, so this also bounds the time.
MAX_BYTES = 128 << 10
MAX_DEPTH = 100  # nested mappings/sequences
# What aliases may add to the document, in nodes (a scalar also counts one per 64
# characters): generous for anchors of shared defaults, tiny next to a bomb.
MAX_ALIAS_EXPANSION = 100_000

_FIX = "Fix the YAML syntax."


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def read_yaml(path: str | Path, what: str) -> Any:
    """Parses `path`; every problem becomes a one-line `ConfigError` naming the file (and line).

    Args:
        path: the YAML file.
        what: what the file is, for messages (`"Recipe"`, `"Device profile"`).

    Returns:
        The document's value (`None` for an empty file).

    Raises:
        ConfigError: the file is missing, too large, binary, not UTF-8, not valid
            YAML, too deeply nested, has duplicate keys or expands too much.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(f"{what} is too large to be a {what.lower()} file. Received: {str(path)!r} "
                              f"({size} bytes; the limit is {MAX_BYTES}). Pass the YAML file, not data.")
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} cannot be read. Received: {str(path)!r} ({exc.strerror or exc}). "
                          "Check the path and its permissions.") from None
    return parse_yaml(data, what=what, origin=str(path))


def parse_yaml(data: bytes | str, *, what: str = "YAML", origin: str = "<string>") -> Any:
    """Parses YAML text or bytes with the limits described in the module docstring.

    Args:
        data: the document, as bytes (UTF-8, optionally with a BOM) or text.
        what: what the document is, for messages. Defaults to `"YAML"`.
        origin: where it came from (a path), for messages. Defaults to `"<string>"`.

    Raises:
        ConfigError: see `read_yaml`.
    """
    import yaml

    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise ConfigError(f"{what} is too large. Received: {origin!r} ({len(data)} bytes; the limit is "
                              f"{MAX_BYTES}). Pass the YAML file, not data.")
        if b"\x00" in data:
            raise ConfigError(f"{what} is a binary file, not YAML. Received: {origin!r} (contains NUL bytes). "
                              "Pass a YAML text file.")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{what} is not UTF-8 text. Received: {origin!r} (byte {exc.start}: "
                              f"{data[exc.start:exc.start + 1]!r}). Save the file as UTF-8.") from None
    else:
        text = data
        if "\x00" in text:
            raise ConfigError(f"{what} contains NUL characters, so it is not YAML text. Received: {origin!r}. "
                              "Pass a YAML text file.")
    loader = None
    try:
        loader = _Loader(text, what=what, origin=origin)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, what, origin)
        return loader.construct_document(node)
    except ConfigError:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or exc
        raise ConfigError(f"{what} does not parse. Received: {origin!r}{line} ({_one_line(problem)}). {_FIX}") from None
    # PyYAML's constructors let these escape on odd scalars: `2020-13-45`, `!!int 0xZZ`, `!!int`.
    except (ValueError, TypeError, OverflowError, IndexError, KeyError, AttributeError) as exc:
        raise ConfigError(f"{what} has a value that does not convert. Received: {origin!r} ({_one_line(exc)}). "
                          "Quote the value to keep it a string.") from None
    finally:
        if loader is not None:
            loader.dispose()


def _make_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """PyYAML's safe loader with a depth limit and duplicate-key errors."""

        def __init__(self, text: str, *, what: str, origin: str):
            super().__init__(text)
            self._what, self._origin, self._depth = what, origin, 0

        def compose_node(self, parent, index):
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    mark = self.peek_event().start_mark
                    raise ConfigError(f"{self._what} is nested too deeply. Received: {self._origin!r} line "
                                      f"{mark.line + 1} (more than {MAX_DEPTH} levels). Flatten the structure.")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen = set()
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        duplicate = key in seen
                        seen.add(key)
                    except TypeError:  # unhashable: PyYAML reports it below
                        continue
                    if duplicate:
                        raise ConfigError(f"{self._what} has a duplicate key. Received: {key!r} twice in "
                                          f"{self._origin!r} line {key_node.start_mark.line + 1}. Keep one.")
            return super().construct_mapping(node, deep=deep)

    return Loader


_LOADER = None


def _Loader(text: str, *, what: str, origin: str):  # noqa: N802 - builds the class once, lazily
    global _LOADER
    if _LOADER is None:
        _LOADER = _make_loader()
    return _LOADER(text, what=what, origin=origin)


def _check_expansion(root, what: str, origin: str) -> None:
    """Refuses a node graph whose aliases expand too much, or that contains itself.

    Iterative post-order walk over distinct nodes, so it is linear in the file's size
    whatever the expansion is.
    """
    import yaml

    size: dict[int, int] = {}  # id(node) -> expanded size
    distinct = 0
    on_path: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in _children(node))
            continue
        if key in size:
            continue
        if key in on_path:
            raise ConfigError(f"{what} has an alias that contains itself. Received: {origin!r} line "
                              f"{node.start_mark.line + 1}. Remove the recursive alias.")
        distinct += 1
        if isinstance(node, yaml.ScalarNode):
            size[key] = 1 + len(node.value) // 64
            continue
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise ConfigError(f"{what} has an alias that contains itself. Received: {origin!r} line "
                                  f"{child.start_mark.line + 1}. Remove the recursive alias.")
            if id(child) not in size:
                stack.append((child, False))
    if size[id(root)] - distinct > MAX_ALIAS_EXPANSION:
        raise ConfigError(f"{what} expands too much through its aliases (*name). Received: {origin!r} expands to "
                          f"more than {MAX_ALIAS_EXPANSION} extra items. Use fewer nested aliases.")


def _children(node) -> list:
    import yaml

    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
