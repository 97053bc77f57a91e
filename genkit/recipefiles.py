"""Recipe files: TOML read safely, ``extends`` chains merged, and the file each value came from.

``extends = "cifar10.toml"`` (a path relative to the recipe's folder) takes every table of that
recipe and lets this one override keys (:func:`merge_recipes`); :func:`read_recipe_sources` also
records which file set each value, so that an error names the file to change.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

from genkit.errors import ConfigError, RecipeError

#: how deep a recipe's tables and arrays may nest (genkit's own nest four deep): deeper is no recipe, and would
#: take Python's recursion past its limit in reading, merging or validating it
MAX_NESTING = 32


def read_toml(path: str | Path) -> dict:
    path = Path(path)
    try:
        with path.open("rb") as fh:
            table = tomllib.load(fh)
    except RecursionError:  # tomllib reads nested arrays and inline tables recursively
        raise ConfigError(f"{path}: nested more than {MAX_NESTING} tables or arrays deep; not a recipe") from None
    except FileNotFoundError:
        raise ConfigError(f"{path}: recipe file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a recipe .toml file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file; expected a recipe .toml file") from None
    if _nesting(table) > MAX_NESTING:
        raise ConfigError(f"{path}: nested more than {MAX_NESTING} tables or arrays deep; not a recipe")
    return table


def _nesting(value: Any) -> int:
    """How deep tables and arrays nest in ``value``, counted without recursion."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, depth = todo.pop()
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        todo += [(child, depth + 1) for child in children if isinstance(child, (dict, list))]
    return deepest


def merge_recipes(base: dict, child: dict) -> dict:
    """``child``'s keys over ``base``'s: tables merge key by key, every other value (arrays too) replaces.

    A plugin reference is a table whose ``name`` picks the plugin: when ``child`` names another
    plugin than ``base`` (``likelihood = "dmol"`` → ``[model.likelihood] name = "categorical"``), the
    base's settings for the old plugin are dropped, not merged into the new one's.
    """
    out = copy.deepcopy(base)
    for key, value in child.items():
        current = out.get(key)
        if isinstance(current, str) and isinstance(value, dict):
            current = {"name": current}  # the shorthand `posterior = "x"`, given settings here
        if (
            isinstance(current, dict)
            and isinstance(value, dict)
            and value.get("name", current.get("name")) == current.get("name")
        ):
            out[key] = merge_recipes(current, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_recipe(path: str | Path) -> dict:
    """The recipe file at ``path`` as a table, with the recipes it ``extends`` merged beneath it."""
    return read_recipe_sources(path)[0]


def read_recipe_sources(path: str | Path) -> tuple[dict, dict[str, str]]:
    """:func:`read_recipe`, and the file each value comes from (dotted key → file) so that an error names it.

    The ``extends`` chain is followed in a loop, not by recursion: however long, it ends in the merged
    recipe or in one line (a cycle, a missing file, a value that is not a path).
    """
    path = Path(path)
    chain: list[tuple[Path, dict]] = []  # the recipe first, the one it extends next, …
    seen = set()
    while True:
        raw = read_toml(path)
        parent = raw.pop("extends", None)
        chain.append((path, raw))
        seen.add(path.resolve())
        if parent is None:
            break
        if not isinstance(parent, str) or not parent:
            raise RecipeError(str(path), "extends", "the path of the recipe this one starts from (a string)", parent)
        base = (path.parent / parent).resolve()
        if base in seen:
            raise RecipeError(
                str(path), "extends", "a recipe that does not extend this one again", parent, note=" (a cycle)"
            )
        if not base.is_file():
            raise RecipeError(str(path), "extends", f"an existing recipe file ({base} not found)", parent)
        path = base
    merged: dict = {}
    sources: dict[str, str] = {}
    for file, raw in reversed(chain):
        merged = merge_recipes(merged, raw)
        sources.update(dict.fromkeys(_leaf_keys(raw), str(file)))
    present = set(_leaf_keys(merged))
    return merged, {key: file for key, file in sources.items() if key in present or _holds(present, key)}


def _leaf_keys(table: dict, prefix: str = "") -> list[str]:
    """The dotted keys of every value of ``table`` that is not itself a table."""
    keys = []
    for key, value in table.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        keys += _leaf_keys(value, dotted) if isinstance(value, dict) else [dotted]
    return keys


def _holds(keys: set[str], table: str) -> bool:
    return any(key.startswith(table + ".") for key in keys)


def source_of(key: str | None, sources: dict[str, str]) -> str | None:
    """The file that set the value at ``key`` (a dotted path, ``[i]`` for array items), the one that set the table
    holding it, or the only file that set anything under it; ``None`` when that is not one file."""
    if key is None:
        return None
    path = re.sub(r"\[\d+\]", "", key)
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        found = sources.get(".".join(parts[:end]))
        if found is not None:
            return found
    under = {file for dotted, file in sources.items() if dotted.startswith(path + ".")}
    return under.pop() if len(under) == 1 else None
