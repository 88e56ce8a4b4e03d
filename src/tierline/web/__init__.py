"""The web dashboard (``tierline serve`` at ``/``): a tier map, country pages, determinations,
screening, the ledger and the chip explorer, for signed-in API-key holders (docs/dashboard.md)."""

from tierline.web.routes import mount_dashboard
from tierline.web.sessions import session_caller

__all__ = ["mount_dashboard", "session_caller"]
