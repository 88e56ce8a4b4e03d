"""License exceptions and authorizations, each its own cited unit, tried in this order."""

from __future__ import annotations

from collections.abc import Callable

from tierline.allowances import PendingDraws
from tierline.determination.facts import Facts, LineFacts
from tierline.determination.license_exceptions import acm, aia, lpp, nac_aca, veu
from tierline.determination.outcome import Outcome

Consider = Callable[[LineFacts, Facts, PendingDraws], "Outcome | None"]
ORDER: tuple[Consider, ...] = (
    aia.consider,
    acm.consider,
    nac_aca.consider,
    veu.consider_uveu,
    veu.consider_nveu,
    lpp.consider,
)
