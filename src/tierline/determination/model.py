"""The transaction a determination is made for (pydantic), documented in docs/determinations.md.

Example::

    Transaction.model_validate({
        "date": "2025-06-01", "destination": "BR",
        "items": [{"chip": "H100 SXM5", "quantity": 2000}],
        "ultimate_consignee": {"id": "acme-br", "name": "Acme Brasil", "country": "BR",
                               "headquarters": "BR", "ultimate_parent_headquarters": "US"},
        "end_use": "data_center",
    })
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tierline.errors import TierlineError
from tierline.weights import ModelWeights


class Kind(StrEnum):
    export = "export"
    reexport = "reexport"
    in_country_transfer = "in_country_transfer"


class EndUse(StrEnum):
    data_center = "data_center"
    development = "development"
    production = "production"
    storage = "storage"
    training_4e091 = "training_4e091"
    iaas_training = "iaas_training"
    other = "other"


class PartyKind(StrEnum):
    commercial = "commercial"
    government = "government"
    university = "university"
    other = "other"


class VEU(StrEnum):
    UVEU = "UVEU"
    NVEU = "NVEU"


class Certification(StrEnum):
    aia_certification = "aia_certification"  # 15 CFR 740.27(b)(2) certification obtained and submitted to BIS
    approved_designer = "approved_designer"  # designer on supp. no. 6 to part 740 or "authorized" (Note 1 to 3A090.a)
    g2g_arrangement = "g2g_arrangement"  # government-to-government arrangement for the destination


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False, allow_inf_nan=False)


class ChipSpecInput(_Model):
    """A chip given by its figures rather than a catalogue name."""

    rates: dict[str, float]
    die_areas: list[float] = []
    planar_die_areas: list[float] = []
    datacenter: bool = True
    sparse: bool = False
    memory_bandwidth_gbs: float | None = None


class LineItem(_Model):
    """One order line: a catalogue chip, a chip spec, a system of ICs, or model weights."""

    chip: str | None = None
    spec: ChipSpecInput | None = None
    model_weights: ModelWeights | None = None
    quantity: int = Field(1, gt=0, strict=True)
    system: bool = False
    ics_per_unit: int = Field(1, gt=0, strict=True)
    base_eccn: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> LineItem:
        given = [k for k in ("chip", "spec", "model_weights") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of chip, spec, model_weights")
        return self


IDENTIFIER_REASON = "':' is not allowed in an identifier (it separates the parts of account names)"


class Party(_Model):
    """A party to the transaction (ultimate consignee or end user)."""

    id: str | None = None
    name: str
    country: str
    headquarters: str | None = None
    ultimate_parent_headquarters: str | None = None
    kind: PartyKind = PartyKind.commercial
    veu: VEU | None = None
    veu_destinations: list[str] = []
    lpp_operating_entity: str | None = None

    @field_validator("id", "lpp_operating_entity")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and ":" in value:
            raise ValueError(IDENTIFIER_REASON)
        return value

    @property
    def key(self) -> str:
        return self.id or self.name


class Transaction(_Model):
    """A proposed export, reexport or in-country transfer."""

    date: dt.date
    vintage: str = "ai-diffusion"
    kind: Kind | None = None
    export_from: str = "US"
    destination: str
    items: list[LineItem] = Field(min_length=1)
    ultimate_consignee: Party
    end_user: Party | None = None
    end_use: EndUse = EndUse.other
    certifications: list[Certification] = []

    @field_validator("date", mode="before")
    @classmethod
    def _date(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(f"{value!r} is not a date in the form YYYY-MM-DD") from None
        return value

    @property
    def parties(self) -> list[Party]:
        return [self.ultimate_consignee] + ([self.end_user] if self.end_user else [])

    @property
    def effective_end_user(self) -> Party:
        return self.end_user or self.ultimate_consignee

    def has(self, certification: Certification) -> bool:
        return certification in self.certifications

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Transaction:  # type: ignore[override]
        """Validate raw data; the TierlineError names the field path (e.g. ``items[0].quantity``) and why."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
            message = first["msg"].removeprefix("Value error, ")
            raise TierlineError(path or "transaction", message) from None
