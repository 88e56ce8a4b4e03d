"""Dated, cited policy data: parameters (OpenFisca-style YAML) and named rule vintages."""

from tierline.policy.parameters import Parameter, ParameterTree, Reference, load_parameters
from tierline.policy.vintages import Context, Vintage, load_vintages

__all__ = [
    "Context",
    "Parameter",
    "ParameterTree",
    "Reference",
    "Vintage",
    "load_parameters",
    "load_vintages",
]
