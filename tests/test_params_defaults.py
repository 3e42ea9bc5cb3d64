"""One source for every value (issue 18): a key that params.yaml sets has no default in the
schema, so the schema cannot silently disagree with params.yaml (a profile or a program that
builds a section without it gets a clear error instead of a second, stale value)."""

from __future__ import annotations

import types
import typing

import yaml
from pydantic import BaseModel

from hubert_ee.config import Params


def _models(annotation) -> tuple[type[BaseModel] | None, type[BaseModel] | None]:
    """(model, model of a dict's values) inside an annotation such as `X | None` or `dict[str, X]`."""
    args = typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, None
    if typing.get_origin(annotation) is dict:
        return None, _models(args[1])[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for a in args:
            model, values = _models(a)
            if model or values:
                return model, values
    return None, None


def defaulted_keys(
    model: type[BaseModel], raw: dict, prefix: str = "", optional: frozenset = frozenset()
) -> list[str]:
    """Dotted keys set in `raw` whose field in `model` has a default. Exempt: a default of None
    (an option that is off unless given, e.g. `model.init_checkpoint`) and, in a mapping of
    sections (`data.synthetic.domains`), keys that not every entry sets (`optional`)."""
    out = []
    for key, value in raw.items():
        field = model.model_fields[key]
        if not field.is_required() and field.default is not None and key not in optional:
            out.append(prefix + key)
        sub, values = _models(field.annotation)
        if sub is not None and isinstance(value, dict):
            out += defaulted_keys(sub, value, f"{prefix}{key}.")
        elif values is not None and isinstance(value, dict):
            every = set.intersection(*(set(v) for v in value.values())) if value else set()
            some = frozenset(k for v in value.values() for k in v) - every
            for k, v in value.items():
                out += defaulted_keys(values, v, f"{prefix}{key}.{k}.", some)
    return out


def test_no_schema_default_for_a_key_params_yaml_sets(root):
    raw = yaml.safe_load((root / "params.yaml").read_text())
    assert defaulted_keys(Params, raw) == []


def test_the_walk_finds_defaults_in_nested_sections():
    class Inner(BaseModel):
        a: int
        b: int = 2

    class Outer(BaseModel):
        inner: Inner
        many: dict[str, Inner]
        some: dict[str, Inner]
        maybe: Inner | None = None  # None: off unless given
        count: int = 3

    raw = {
        "inner": {"a": 1, "b": 2},
        "many": {"x": {"a": 1, "b": 3}, "y": {"a": 1, "b": 4}},
        "some": {"x": {"a": 1, "b": 3}, "y": {"a": 1}},  # b is set by one entry only
        "maybe": {"a": 1, "b": 5},
        "count": 3,
    }
    assert defaulted_keys(Outer, raw) == ["inner.b", "many.x.b", "many.y.b", "maybe.b", "count"]
