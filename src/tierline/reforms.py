"""Reforms as data: a named YAML patch over the dated parameter tree and the country lists.

A reform file looks like::

    name: poland-tier1
    description: Move Poland to Tier 1 from 1 July 2025
    parameters:                       # optional: new dated values
      - path: lpp.annual_tpp_per_consignee
        from: 2026-01-01
        value: 10000000
        unit: tpp                     # optional; must be the parameter's unit when given
    countries:                        # optional: dated group changes
      - country: PL
        group: SUPP5A                 # a Country Group (D:5 ...) or pseudo-group (SUPP5A = Tier 1)
        change: added                 # or removed
        from: 2025-07-01

A reformed value holds from its date on and replaces the base values dated on or after it. A
reform is validated against the tree before use: an unknown path, a value that does not fit the
parameter's unit (the loader's own checks), a date before the parameter's first value, an unknown
country or group are each refused with a TierlineError naming the entry. Reforms are applied to any
vintage through ``Context.make(vintage, as_of, reform=...)``; stored ones live under
``$TIERLINE_HOME/scenarios/NAME.yaml``; examples ship in ``policy/data/reforms/``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tierline.countries import lookup
from tierline.errors import PolicyDataError, TierlineError
from tierline.groups import GROUPS, PSEUDO_GROUPS, GroupChange
from tierline.policy.epochs import dates_in
from tierline.policy.parameters import Parameter, ParameterTree, Reference, _check_value, load_parameters
from tierline.policy.vintages import POLICY_DIR_ENV

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
TOP_KEYS = {"name", "description", "parameters", "countries"}
PARAMETER_KEYS = {"path", "from", "value", "unit"}
COUNTRY_KEYS = {"country", "group", "change", "from"}
HOME_ENV = "TIERLINE_HOME"


@dataclass(frozen=True)
class ParameterChange:
    """A new value of one parameter from a date."""

    path: str
    effective: dt.date
    value: Any

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "from": self.effective.isoformat(), "value": self.value}


@dataclass(frozen=True)
class Reform:
    """A validated reform. Equality and hashing use the name and a digest of the content."""

    name: str
    digest: str
    description: str = field(default="", compare=False)
    parameters: tuple[ParameterChange, ...] = field(default=(), compare=False)
    groups: tuple[GroupChange, ...] = field(default=(), compare=False)

    def citation(self) -> str:
        return f"reform {self.name} (scenario, not law)"

    def parameter_dates(self) -> tuple[dt.date, ...]:
        """Every date one of this reform's parameter values starts on or holds."""
        inside = {d for c in self.parameters for d in dates_in(c.value)}
        return tuple(sorted({c.effective for c in self.parameters} | inside))

    def dates(self) -> tuple[dt.date, ...]:
        """Every date this reform changes something on: its parameters' and its group changes'."""
        return tuple(sorted({*self.parameter_dates(), *(g.effective for g in self.groups)}))

    def members(self, group: str, base: frozenset[str], on: dt.date) -> frozenset[str]:
        """`base` (the group's members on `on`) with this reform's changes dated on or before `on`."""
        current = set(base)
        for change in self.groups:
            if change.group == group and change.effective <= on:
                (current.add if change.added else current.discard)(change.iso2)
        return frozenset(current)

    def apply(self, tree: ParameterTree) -> ParameterTree:
        """The tree with this reform's dated values overlaid."""
        return _apply(tree, self)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "parameters": [p.as_dict() for p in self.parameters],
            "countries": [
                {
                    "country": g.iso2,
                    "group": g.group,
                    "change": "added" if g.added else "removed",
                    "from": g.effective.isoformat(),
                }
                for g in self.groups
            ],
        }


@functools.lru_cache(maxsize=64)
def _apply(tree: ParameterTree, reform: Reform) -> ParameterTree:
    params = {p.path: p for p in tree}
    for path in dict.fromkeys(c.path for c in reform.parameters):
        base = params[path]
        changes = sorted((c for c in reform.parameters if c.path == path), key=lambda c: c.effective)
        first = changes[0].effective
        values = [(d, v) for d, v in base.values if d < first] + [(c.effective, c.value) for c in changes]
        dates = ", ".join(c.effective.isoformat() for c in changes)
        source = "; ".join(s for s in (base.reference.source, f"{reform.citation()} from {dates}") if s)
        params[path] = replace(
            base,
            values=tuple(values),
            reference=Reference(base.reference.cfr, base.reference.fr, base.reference.url, source),
        )
    return ParameterTree(params)


def _date(file: str, key: str, value: Any) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise PolicyDataError(file, key, f"{value!r} is not a date (YYYY-MM-DD)") from None


def _entries(file: str, key: str, raw: Any, allowed: set[str], required: set[str]) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise PolicyDataError(file, key, "must be a list")
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise PolicyDataError(file, f"{key}[{i}]", "expected a mapping")
        missing, unknown = required - set(entry), set(entry) - allowed
        if missing:
            raise PolicyDataError(file, f"{key}[{i}]", f"missing {', '.join(sorted(missing))}")
        if unknown:
            raise PolicyDataError(file, f"{key}[{i}]", f"unknown key(s) {', '.join(sorted(unknown))}")
    return raw


def _parameter_change(file: str, key: str, entry: dict[str, Any], tree: ParameterTree) -> ParameterChange:
    path = str(entry["path"])
    try:
        param: Parameter = tree.get(path)
    except TierlineError:
        raise PolicyDataError(file, f"{key}.path", f"unknown parameter {path!r}") from None
    if "unit" in entry and entry["unit"] != param.unit:
        raise PolicyDataError(file, f"{key}.unit", f"{path} is in {param.unit!r}, not {entry['unit']!r}")
    effective = _date(file, f"{key}.from", entry["from"])
    first = param.values[0][0]
    if effective < first:
        raise PolicyDataError(
            file, f"{key}.from", f"{effective.isoformat()} is before {path}'s first value ({first.isoformat()})"
        )
    value = _check_value(file, f"{key}.value ({path})", param.unit, entry["value"])
    return ParameterChange(path, effective, value)


def _group_change(file: str, key: str, entry: dict[str, Any], reform: str) -> GroupChange:
    country = lookup(str(entry["country"]), f"{file}: {key}.country")
    group = str(entry["group"])
    if group not in GROUPS + PSEUDO_GROUPS:
        raise PolicyDataError(
            file, f"{key}.group", f"unknown group {group!r}; one of {', '.join(GROUPS + PSEUDO_GROUPS)}"
        )
    if entry["change"] not in ("added", "removed"):
        raise PolicyDataError(file, f"{key}.change", f"{entry['change']!r} is not added or removed")
    effective = _date(file, f"{key}.from", entry["from"])
    return GroupChange(effective, country.iso2, group, entry["change"] == "added", f"reform {reform}", "unconfirmed")


def parse_reform(data: Any, file: str = "<reform>", tree: ParameterTree | None = None) -> Reform:
    """Validate a reform (parsed YAML/JSON) against `tree` (default: the parameters in use)."""
    if tree is None:
        tree = load_parameters(os.environ.get(POLICY_DIR_ENV) or None)
    if not isinstance(data, dict):
        raise PolicyDataError(file, "<root>", "expected a mapping with name, description, parameters, countries")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise PolicyDataError(file, "<root>", f"unknown key(s) {', '.join(sorted(unknown))}")
    name = data.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise PolicyDataError(file, "name", f"{name!r} is not a name (lower-case letters, digits, - and _)")
    params = _entries(file, "parameters", data.get("parameters"), PARAMETER_KEYS, PARAMETER_KEYS - {"unit"})
    countries = _entries(file, "countries", data.get("countries"), COUNTRY_KEYS, COUNTRY_KEYS)
    if not params and not countries:
        raise PolicyDataError(file, "<root>", "a reform changes at least one parameter or country")
    changes = tuple(_parameter_change(file, f"parameters[{i}]", e, tree) for i, e in enumerate(params))
    seen: set[tuple[str, dt.date]] = set()
    for i, change in enumerate(changes):
        if (change.path, change.effective) in seen:
            raise PolicyDataError(file, f"parameters[{i}]", f"{change.path} is set twice from {change.effective}")
        seen.add((change.path, change.effective))
    groups = tuple(_group_change(file, f"countries[{i}]", e, name) for i, e in enumerate(countries))
    digest = hashlib.sha256(
        json.dumps(
            [[c.as_dict() for c in changes], [g.as_dict() for g in groups]], sort_keys=True, default=str
        ).encode()
    ).hexdigest()
    return Reform(name, digest, str(data.get("description") or "").strip(), changes, groups)


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TierlineError("reform", f"cannot read {path}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)  # JSON is YAML
    except (yaml.YAMLError, ValueError) as exc:
        raise PolicyDataError(path.name, "<file>", f"not valid YAML or JSON ({exc})") from None


def load_reform_file(path: Path | str, tree: ParameterTree | None = None) -> Reform:
    file = Path(path)
    return parse_reform(_read(file), file.name, tree)


def scenarios_dir() -> Path:
    """Where stored reforms live: ``$TIERLINE_HOME/scenarios`` (default ``~/.tierline/scenarios``)."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".tierline") / "scenarios"


def bundled_dir() -> Path:
    return Path(str(resources.files("tierline.policy") / "data" / "reforms"))


def _sources() -> dict[str, tuple[str, Path]]:
    """Reform name -> (origin, file): stored scenarios shadow the bundled examples."""
    out: dict[str, tuple[str, Path]] = {}
    for origin, directory in (("bundled", bundled_dir()), ("stored", scenarios_dir())):
        if directory.is_dir():
            for file in sorted(directory.glob("*.yaml")):
                out[file.stem] = (origin, file)
    return dict(sorted(out.items()))


def reform_names() -> list[str]:
    """The names of every stored or bundled reform (the files are not read)."""
    return list(_sources())


def reform_origin(name: str) -> str | None:
    """``bundled`` or ``stored`` (a stored scenario shadows a bundled one), or None if unknown."""
    found = _sources().get(name)
    return found[0] if found else None


def list_reforms() -> list[dict[str, Any]]:
    """Every stored or bundled reform: name, origin, file, description."""
    rows = []
    for name, (origin, file) in _sources().items():
        data = _read(file)
        description = str(data.get("description") or "").strip() if isinstance(data, dict) else ""
        rows.append({"name": name, "origin": origin, "file": str(file), "description": description})
    return rows


def get_reform(name: str) -> Reform:
    """A stored (or bundled) reform by name, validated."""
    found = _sources().get(name)
    if found is None:
        known = ", ".join(_sources()) or "none"
        raise TierlineError("scenario", f"unknown scenario {name!r}; known: {known}")
    return load_reform_file(found[1])


def add_reform(file: Path | str, replace_existing: bool = False) -> tuple[Reform, Path]:
    """Validate a reform file and store it as ``$TIERLINE_HOME/scenarios/NAME.yaml``."""
    source = Path(file)
    reform = load_reform_file(source)
    target = scenarios_dir() / f"{reform.name}.yaml"
    if target.exists() and not replace_existing:
        raise TierlineError("scenario", f"{reform.name!r} is already stored at {target}; use --replace")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    return reform, target
