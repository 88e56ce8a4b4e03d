"""Reports: a comparison, a pathway analysis or a projection as a self-contained HTML file and a PDF.

Every analysis builds a `Report` (``reports.model``); the renderers turn it into HTML (``reports.html``)
and PDF (``reports.pdf``) with the vintage, reform and as-of date stamped on every page.
"""

from tierline.reports.model import Chart, Citation, Report, Section, Stamp, Table

__all__ = ["Chart", "Citation", "Report", "Section", "Stamp", "Table"]
