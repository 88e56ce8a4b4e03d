"""Named rule vintages and the evaluation context (vintage + as-of date) every answer carries."""

from __future__ import annotations

import datetime as dt
import functools
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tierline.errors import PolicyDataError, TierlineError, parse_date
from tierline.policy.parameters import (
    CONFIDENCES,
    REFERENCE_KEYS,
    Parameter,
    ParameterTree,
    Reference,
    load_parameters,
)

if TYPE_CHECKING:
    from tierline.reforms import Reform

DEFAULT_VINTAGE = "ai-diffusion"
POLICY_DIR_ENV = "TIERLINE_POLICY_DIR"  # a directory of parameter files used instead of the bundled ones
PROVISIONS = {
    "destination_scope_oct2023": "Licence to D:1/D:4/D:5 not in A:5/A:6, plus Macau (15 CFR 742.6(a)(6)(iii))",
    "headquarters_rule": "Licence worldwide for Macau/D:5-headquartered parties (15 CFR 744.23(a)(3) -> 742.6)",
    "worldwide_a_level": "Licence worldwide for a-level items (15 CFR 742.6(a)(6)(iii)(A))",
    "tiers": "Three AI Diffusion tiers (15 CFR 740 Supp. 5(a); Country Group D:5 plus Macau)",
    "aia": "License Exception AIA (15 CFR 740.27)",
    "acm": "License Exception ACM (15 CFR 740.28)",
    "lpp": "License Exception LPP (15 CFR 740.29)",
    "nac_aca": "License Exceptions NAC and ACA (15 CFR 740.8)",
    "hbm_3a090c": "ECCN 3A090.c and License Exception HBM (15 CFR 740.25)",
    "country_allocations": "Tier 2 country allocations (15 CFR 742.6(b)(10))",
    "data_center_veu": "Data Center VEU, universal and national (15 CFR 748.15)",
    "eccn_4e091": "ECCN 4E091 model weights (15 CFR 742.6(a)(13))",
    "china_case_by_case_2026": "China/Macau case-by-case review (15 CFR 742.6(b)(10)(iii)(A)(1))",
}


@dataclass(frozen=True)
class Vintage:
    """A named rule regime."""

    name: str
    title: str
    description: str
    in_force_from: dt.date
    reference: Reference
    confidence: str
    provisions: frozenset[str]
    compliance_from: dt.date | None = None

    def has(self, provision: str) -> bool:
        return provision in self.provisions


def _vintage(file: str, name: str, node: Any) -> Vintage:
    if not isinstance(node, dict):
        raise PolicyDataError(file, name, "expected a mapping")
    required = {"title", "description", "in_force_from", "reference", "confidence", "provisions"}
    missing = required - set(node)
    if missing:
        raise PolicyDataError(file, name, f"missing {', '.join(sorted(missing))}")
    unknown = set(node) - required - {"compliance_from"}
    if unknown:
        raise PolicyDataError(file, name, f"unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("in_force_from", "compliance_from"):
        if key in node and not isinstance(node[key], dt.date):
            raise PolicyDataError(file, f"{name}.{key}", f"{node[key]!r} is not a date (YYYY-MM-DD)")
    if node["confidence"] not in CONFIDENCES:
        raise PolicyDataError(file, f"{name}.confidence", f"{node['confidence']!r} is not one of {CONFIDENCES}")
    ref = node["reference"]
    if not isinstance(ref, dict) or set(ref) - REFERENCE_KEYS:
        raise PolicyDataError(file, f"{name}.reference", f"must be a mapping with keys from {sorted(REFERENCE_KEYS)}")
    bad = set(node["provisions"]) - set(PROVISIONS)
    if bad:
        raise PolicyDataError(file, f"{name}.provisions", f"unknown provision(s) {', '.join(sorted(bad))}")
    return Vintage(
        name=name,
        title=node["title"],
        description=" ".join(str(node["description"]).split()),
        in_force_from=node["in_force_from"],
        compliance_from=node.get("compliance_from"),
        reference=Reference(**{k: str(v) for k, v in ref.items()}),
        confidence=node["confidence"],
        provisions=frozenset(node["provisions"]),
    )


def load_vintages(path: Path | str | None = None) -> dict[str, Vintage]:
    """Load and validate the vintage definitions (default: the bundled file)."""
    if path is None:
        return _bundled()
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, ValueError) as exc:
        raise PolicyDataError(file.name, "<file>", f"not valid YAML ({exc})") from None
    if not isinstance(data, dict) or not data:
        raise PolicyDataError(file.name, "<root>", "expected a mapping of vintage names")
    return {str(name): _vintage(file.name, str(name), node) for name, node in data.items()}


@functools.cache
def _bundled() -> dict[str, Vintage]:
    return load_vintages(Path(str(resources.files("tierline.policy") / "data" / "vintages.yaml")))


def get_vintage(name: str) -> Vintage:
    vintages = load_vintages()
    if name not in vintages:
        raise TierlineError("vintage", f"unknown vintage {name!r}; one of {', '.join(vintages)}")
    return vintages[name]


@dataclass(frozen=True)
class ParameterUse:
    """A parameter value used by an answer, with its citation and confidence."""

    path: str
    value: Any
    in_force_from: dt.date
    reference: Reference
    confidence: str

    def as_dict(self) -> dict[str, Any]:
        value = self.value.isoformat() if isinstance(self.value, dt.date) else self.value
        return {
            "parameter": self.path,
            "value": value,
            "in_force_from": self.in_force_from.isoformat(),
            "reference": self.reference.as_dict(),
            "confidence": self.confidence,
        }


@dataclass
class Context:
    """The vintage and as-of date an answer is computed under, and the parameters it read."""

    vintage: Vintage
    as_of: dt.date
    parameters: ParameterTree = field(default_factory=lambda: load_parameters(os.environ.get(POLICY_DIR_ENV) or None))
    _uses: dict[str, ParameterUse] = field(default_factory=dict, repr=False, compare=False)
    reform: Reform | None = None  # a scenario: its parameters are in `parameters`, its group changes read by tiers

    @classmethod
    def make(
        cls, vintage: str | None = None, as_of: str | dt.date | None = None, reform: Reform | None = None
    ) -> Context:
        """Build a context; `as_of` defaults to today, `vintage` to ``ai-diffusion``; `reform` overlays a scenario."""
        day = parse_date(as_of, "as_of") if as_of is not None else dt.date.today()
        if reform is None:
            return cls(vintage=get_vintage(vintage or DEFAULT_VINTAGE), as_of=day)
        tree = reform.apply(load_parameters(os.environ.get(POLICY_DIR_ENV) or None))
        return cls(vintage=get_vintage(vintage or DEFAULT_VINTAGE), as_of=day, parameters=tree, reform=reform)

    def parameter(self, path: str) -> Parameter:
        param = self.parameters.get(path)
        if not param.applies_to(self.vintage.name):
            raise TierlineError(path, f"not part of vintage {self.vintage.name!r}")
        return param

    def use(self, path: str) -> ParameterUse:
        """The value of `path` in force on the as-of date, as a citable record."""
        found = self._uses.get(path)
        if found is None:
            param = self.parameter(path)
            start, value = param.entry_at(self.as_of)
            found = self._uses[path] = ParameterUse(path, value, start, param.reference, param.confidence)
        return found

    def value(self, path: str) -> Any:
        return self.use(path).value

    def maybe(self, path: str) -> ParameterUse | None:
        """Like `use`, but None when the vintage lacks the parameter or no value is in force."""
        param = self.parameters.get(path)
        if not param.applies_to(self.vintage.name):
            return None
        current = None
        for start, value in param.values:
            if start <= self.as_of:
                current = (start, value)
        if current is None:
            return None
        return ParameterUse(path, current[1], current[0], param.reference, param.confidence)

    def stamp(self) -> dict[str, Any]:
        """What every answer says about the regime it used."""
        warnings = []
        if self.as_of < self.vintage.in_force_from:
            warnings.append(
                f"vintage {self.vintage.name} took effect on {self.vintage.in_force_from.isoformat()}; "
                f"this answer applies it to {self.as_of.isoformat()} as a counterfactual"
            )
        return {
            "vintage": self.vintage.name,
            "as_of": self.as_of.isoformat(),
            **({"reform": self.reform.name} if self.reform is not None else {}),
            **({"vintage_warnings": warnings} if warnings else {}),
        }
