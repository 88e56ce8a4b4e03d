"""Regulatory parameters as YAML files with dated values, a reference and a confidence.

A parameter file is a tree; a leaf is a mapping with ``description``, ``unit``, ``reference``,
``confidence`` and ``values`` (ISO date -> value, the value in force from that date until the next
one; ``null`` ends it). ``ParameterTree.value(path, date)`` answers "value in force on date D".
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tierline.errors import PolicyDataError, TierlineError

CONFIDENCES = ("primary", "secondary", "derived", "unconfirmed")
UNITS = {
    "tpp": (int, float),
    "tpp_per_mm2": (int, float),
    "gb_per_s": (int, float),
    "gb_per_s_per_mm2": (int, float),
    "fraction": (int, float),
    "ratio": (int, float),
    "operations": (int, float),
    "count": (int,),
    "days": (int,),
    "transistors": (int, float),
    "date": (dt.date,),
    "bits_by_precision": (dict,),
    "eccn_list": (list,),
    "tpp_schedule": (list,),
    "country_list": (list,),
    "review_policy": (str,),
}
LEAF_KEYS = {"description", "unit", "reference", "confidence", "values"}
OPTIONAL_KEYS = {"note", "source_tag", "vintages", "inclusive"}
REFERENCE_KEYS = {"cfr", "fr", "url", "source"}


@dataclass(frozen=True)
class Reference:
    """Where a value comes from: CFR paragraph, Federal Register citation, URL, secondary source."""

    cfr: str | None = None
    fr: str | None = None
    url: str | None = None
    source: str | None = None

    def cite(self) -> str:
        return "; ".join(p for p in (self.cfr, self.fr) if p) or (self.source or "")

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}


@dataclass(frozen=True)
class Parameter:
    """One regulatory parameter with its dated values."""

    path: str
    description: str
    unit: str
    reference: Reference
    confidence: str
    values: tuple[tuple[dt.date, Any], ...]
    file: str
    note: str | None = None
    source_tag: str | None = None
    vintages: tuple[str, ...] | None = None

    def entry_at(self, on: dt.date) -> tuple[dt.date, Any]:
        """The (start date, value) in force on `on`; a TierlineError if none is."""
        current: tuple[dt.date, Any] | None = None
        for start, value in self.values:
            if start <= on:
                current = (start, value)
        if current is None or current[1] is None:
            first = self.values[0][0].isoformat()
            raise TierlineError(self.path, f"no value in force on {on.isoformat()} (values start {first})")
        return current

    def value_at(self, on: dt.date) -> Any:
        return self.entry_at(on)[1]

    def applies_to(self, vintage: str) -> bool:
        return self.vintages is None or vintage in self.vintages


class ParameterTree:
    """All parameters by dotted path."""

    def __init__(self, params: dict[str, Parameter]) -> None:
        self._params = dict(sorted(params.items()))

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._params.values())

    def __len__(self) -> int:
        return len(self._params)

    def get(self, path: str) -> Parameter:
        try:
            return self._params[path]
        except KeyError:
            raise TierlineError("parameter", f"unknown parameter {path!r}") from None

    def value(self, path: str, on: dt.date) -> Any:
        return self.get(path).value_at(on)


def _fail(file: str, key: str, message: str) -> PolicyDataError:
    return PolicyDataError(file, key, message)


MAX_WHOLE = 2**63  # whole numbers are held exactly as 64-bit integers (screening) and in JSON


def _huge(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) >= MAX_WHOLE
    if isinstance(value, dict):
        return any(_huge(v) for v in value.values())
    if isinstance(value, list):
        return any(_huge(v) for v in value)
    return False


def _check_value(file: str, key: str, unit: str, value: Any) -> Any:
    if value is None:
        return None
    kinds = UNITS[unit]
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise _fail(file, key, f"value {value!r} does not fit unit {unit!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(file, key, f"value {value!r} is not a finite number")
    if isinstance(value, (int, float)) and value < 0:
        raise _fail(file, key, f"value {value!r} is negative")
    if _huge(value):
        raise _fail(file, key, f"a whole number in the value is {MAX_WHOLE:,} or more (too large to hold exactly)")
    if unit == "bits_by_precision" and isinstance(value, dict):
        for name, bits in value.items():
            if not isinstance(bits, int) or bits <= 0:
                raise _fail(file, f"{key}.{name}", f"bit length {bits!r} is not a positive integer")
    if unit == "tpp_schedule" and isinstance(value, list):
        last = None
        for i, step in enumerate(value):
            if not isinstance(step, dict) or set(step) != {"through", "tpp"}:
                raise _fail(file, f"{key}[{i}]", "a schedule step needs exactly 'through' and 'tpp'")
            if not isinstance(step["through"], dt.date) or not isinstance(step["tpp"], (int, float)):
                raise _fail(file, f"{key}[{i}]", "'through' must be a date and 'tpp' a number")
            if last is not None and step["through"] <= last:
                raise _fail(file, f"{key}[{i}]", "schedule dates must increase")
            last = step["through"]
    return value


def _leaf(file: str, path: str, node: dict[str, Any]) -> Parameter:
    missing = LEAF_KEYS - set(node)
    if missing:
        raise _fail(file, path, f"missing {', '.join(sorted(missing))}")
    unknown = set(node) - LEAF_KEYS - OPTIONAL_KEYS
    if unknown:
        raise _fail(file, path, f"unknown key(s) {', '.join(sorted(unknown))}")
    if node["unit"] not in UNITS:
        raise _fail(file, f"{path}.unit", f"unknown unit {node['unit']!r}; one of {sorted(UNITS)}")
    if node["confidence"] not in CONFIDENCES:
        raise _fail(file, f"{path}.confidence", f"{node['confidence']!r} is not one of {CONFIDENCES}")
    ref = node["reference"]
    if not isinstance(ref, dict) or not ref or set(ref) - REFERENCE_KEYS:
        raise _fail(file, f"{path}.reference", f"must be a mapping with keys from {sorted(REFERENCE_KEYS)}")
    if not (ref.get("cfr") or ref.get("fr") or ref.get("source")):
        raise _fail(file, f"{path}.reference", "needs a cfr, fr or source citation")
    raw = node["values"]
    if not isinstance(raw, dict) or not raw:
        raise _fail(file, f"{path}.values", "must map ISO dates to values")
    values = []
    for start, value in raw.items():
        if not isinstance(start, dt.date):
            raise _fail(file, f"{path}.values", f"{start!r} is not a date (YYYY-MM-DD)")
        values.append((start, _check_value(file, f"{path}.values.{start}", node["unit"], value)))
    values.sort(key=lambda item: item[0])
    vintages = node.get("vintages")
    if vintages is not None and not (isinstance(vintages, list) and vintages):
        raise _fail(file, f"{path}.vintages", "must be a non-empty list of vintage names")
    return Parameter(
        path=path,
        description=str(node["description"]).strip(),
        unit=node["unit"],
        reference=Reference(**{k: str(v) for k, v in ref.items()}),
        confidence=node["confidence"],
        values=tuple(values),
        file=file,
        note=node.get("note"),
        source_tag=node.get("source_tag"),
        vintages=tuple(vintages) if vintages else None,
    )


def _walk(file: str, prefix: str, node: Any, out: dict[str, Parameter]) -> None:
    if not isinstance(node, dict):
        raise _fail(file, prefix or "<root>", "expected a mapping")
    if "values" in node or "unit" in node:
        out[prefix] = _leaf(file, prefix, node)
        return
    for key, child in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if path in out:
            raise _fail(file, path, "defined twice")
        _walk(file, path, child, out)


def parse_parameter_file(path: Path | str, text: str | None = None) -> dict[str, Parameter]:
    """Parse and validate one parameter file."""
    name = Path(path).name
    try:
        data = yaml.safe_load(text if text is not None else Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "<file>"
        raise _fail(name, where, f"not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except ValueError as exc:  # PyYAML builds dates eagerly: 2023-13-17 raises here
        raise _fail(name, "<file>", f"an impossible date ({exc})") from None
    out: dict[str, Parameter] = {}
    _walk(name, "", data, out)
    return out


def load_parameters(directory: Path | str | None = None) -> ParameterTree:
    """Load every ``*.yaml`` parameter file in `directory` (default: the bundled policy data)."""
    if directory is None:
        return _bundled()
    return _load_directory(str(Path(directory).resolve()))


@functools.cache
def _load_directory(directory: str) -> ParameterTree:
    if not Path(directory).is_dir():
        raise TierlineError("policy directory", f"{directory} is not a directory")
    params: dict[str, Parameter] = {}
    for file in sorted(Path(directory).glob("*.yaml")):
        for path, param in parse_parameter_file(file).items():
            if path in params:
                raise _fail(file.name, path, f"already defined in {params[path].file}")
            params[path] = param
    return ParameterTree(params)


@functools.cache
def _bundled() -> ParameterTree:
    root = resources.files("tierline.policy") / "data" / "parameters"
    return load_parameters(Path(str(root)))
