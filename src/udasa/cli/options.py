"""Command-line options generated from a config dataclass.

Every field of a stage's config becomes a ``--flag`` whose help is the field's own documentation (the
``Fields:`` section of the dataclass docstring, the text docs/recipes.md shows), so a setting added to
a config is on the command line at once. Values build the config the way a recipe section does
(`udasa.recipe.build`: types checked, errors name the field), in this order: defaults < ``--config FILE``
(a YAML or JSON mapping of the fields, e.g. a recipe's section) < the flags given. Flags left out keep
the lower layers' values.

Scalars are typed flags; lists take ``a,b,c``; mappings take ``key=value,key=value``; either also takes
YAML (``[a, b]``, ``{key: value}``).
"""
from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from udasa.errors import InputError
from udasa.recipe import field_docs


def _base(tp):
    """(the type without Optional, whether None is allowed)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else tp), type(None) in typing.get_args(tp)
    return tp, False


def _scalar(tp) -> bool:
    return tp in (int, float, str, bool)


def parse_value(text: str, tp, flag: str):
    """A flag's text for a list or mapping field: ``a,b`` / ``k=v,k=v`` shorthands, else YAML."""
    from udasa.io import load_yaml

    base, _ = _base(tp)
    origin = typing.get_origin(base) or base
    s = text.strip()
    if s.startswith(("[", "{")) or s in ("null", "~"):
        return load_yaml(s, flag)
    listy = origin in (typing.Union, types.UnionType) and any(typing.get_origin(a) in (list, tuple)
                                                              for a in typing.get_args(base))
    if origin in (list, tuple) or (listy and "," in s) or (isinstance(origin, type) and issubclass(origin, (list, tuple))):
        return [load_yaml(x.strip(), flag) if _is_number(x) else x.strip() for x in s.split(",") if x.strip()]
    if origin is dict:
        out = {}
        for part in (p for p in s.split(",") if p.strip()):
            k, sep, v = part.partition("=")
            if not sep:
                raise InputError(f"expected key=value pairs like 'a=1,b=2' (or YAML), got {text!r}", field=flag)
            out[k.strip()] = load_yaml(v.strip(), flag)
        return out
    return load_yaml(s, flag)  # unions such as str | list[str], nested configs


def _is_number(x: str) -> bool:
    try:
        float(x)
        return True
    except ValueError:
        return False


@dataclasses.dataclass
class Generated:
    """The options one config contributes to a command."""

    cls: type
    params: list[inspect.Parameter]
    names: dict[str, str]  # parameter name -> field name

    def values(self, kwargs: dict) -> dict:
        """The fields given on the command line (lists and mappings parsed)."""
        hints = typing.get_type_hints(self.cls)
        out = {}
        for pname, fname in self.names.items():
            v = kwargs.get(pname)
            if v is None:
                continue
            tp, _ = _base(hints[fname])
            out[fname] = v if _scalar(tp) else parse_value(v, hints[fname], "--" + fname.replace("_", "-"))
        return out


def config_options(cls, *, skip: tuple[str, ...] = (), aliases: dict[str, tuple[str, ...]] | None = None,
                   prefix: str = "") -> Generated:
    """One typer option per field of ``cls`` (but ``skip``), defaults None (= not given), help from the docs."""
    aliases = aliases or {}
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    params, names = [], {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        tp, _ = _base(hints[f.name])
        flag = "--" + (prefix + f.name).replace("_", "-")
        default = "" if f.default is dataclasses.MISSING else f" [default: {f.default}]"
        help_text = docs.get(f.name, "") + ("" if _scalar(tp) else " (a,b / k=v,k=v / YAML)") + default
        decls = [flag, *aliases.get(f.name, ())]
        if tp is bool:
            decls = [f"{d}/--no-{d[2:]}" for d in decls[:1]] + [d for d in decls[1:]]
        annotation = Optional[tp] if _scalar(tp) else Optional[str]
        pname = (prefix + f.name).replace("-", "_")
        params.append(inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                        default=typer.Option(None, *decls, help=help_text, show_default=False)))
        names[pname] = f.name
    return Generated(cls, params, names)


def config_file_option() -> inspect.Parameter:
    return inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path], default=typer.Option(
        None, "--config", help="YAML or JSON mapping of this command's settings (e.g. a recipe's section); flags "
                               "given on the command line override it."))


def build_config(gen: Generated, kwargs: dict, config_file: Path | None, extra: dict | None = None):
    """defaults < --config FILE < flags (< ``extra``: values the command fixes itself)."""
    from udasa.io import load_yaml, read_text_file
    from udasa.recipe import build

    data: dict[str, Any] = {}
    source = "<command line>"
    if config_file is not None:
        data = load_yaml(read_text_file(config_file), str(config_file)) or {}
        if not isinstance(data, dict):
            raise InputError("must be a mapping of settings", path=str(config_file))
        source = str(config_file)
    data = {**data, **gen.values(kwargs), **(extra or {})}
    return build(gen.cls, data, source=source, prefix="", lines={})


def command(app: typer.Typer, name: str, fn: Callable, params: list[inspect.Parameter], help: str) -> None:
    """Register ``fn(**kwargs)`` under ``name`` with an explicit signature (typer reads ``__signature__``)."""
    def wrapper(**kwargs):
        return fn(**kwargs)

    wrapper.__signature__ = inspect.Signature(params)
    wrapper.__doc__ = help
    wrapper.__name__ = name.replace("-", "_")
    app.command(name, help=help)(wrapper)
