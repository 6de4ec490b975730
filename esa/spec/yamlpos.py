"""Safe YAML loading that remembers where every key and item came from."""

from __future__ import annotations

from typing import Any

import yaml

Location = tuple[int, int]  # 1-based line, column
Path = tuple  # keys and indices from the document root


class YamlPositionError(Exception):
    def __init__(self, message: str, line: int, col: int, path: Path = ()):
        super().__init__(message)
        self.message, self.line, self.col, self.path = message, line, col, path


def _loc(node: yaml.Node) -> Location:
    return node.start_mark.line + 1, node.start_mark.column + 1


def load_with_positions(text: str) -> tuple[Any, dict[Path, Location]]:
    """Parse YAML safely; return the data and a map from each path to the line/column of its key or item."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlPositionError(f"invalid YAML: {exc.problem or exc}", line, col) from None
    if root is None:
        return None, {(): (1, 1)}
    positions: dict[Path, Location] = {(): _loc(root)}
    constructor = yaml.SafeLoader("")  # reuses PyYAML's safe scalar resolution (ints, floats, bools, null)
    return _build(root, (), positions, constructor), positions


_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


def _build(node: yaml.Node, path: Path, positions: dict[Path, Location], constructor: yaml.SafeLoader) -> Any:
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _COLLECTION_TAGS:
        raise YamlPositionError(f"unsupported YAML tag '{node.tag}'", *_loc(node), path)
    if isinstance(node, yaml.MappingNode):
        constructor.flatten_mapping(node)  # resolves YAML merge keys (<<)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)):
                raise YamlPositionError("mapping keys must be scalars", *_loc(key_node), path)
            if key in result:
                raise YamlPositionError(f"duplicate key '{key}'", *_loc(key_node), path + (key,))
            positions[path + (key,)] = _loc(key_node)
            result[key] = _build(value_node, path + (key,), positions, constructor)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item_node in enumerate(node.value):
            positions[path + (index,)] = _loc(item_node)
            items.append(_build(item_node, path + (index,), positions, constructor))
        return items
    try:
        return constructor.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        raise YamlPositionError(f"unsupported YAML value: {exc.problem}", *_loc(node), path) from None


def locate(positions: dict[Path, Location], path: Path) -> Location:
    """The location of the longest known prefix of ``path``."""
    for end in range(len(path), -1, -1):
        if tuple(path[:end]) in positions:
            return positions[tuple(path[:end])]
    return 1, 1
