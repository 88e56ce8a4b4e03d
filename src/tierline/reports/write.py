"""Write a report as OUT.html and OUT.pdf, each atomically (a temporary file in the same directory, renamed)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from tierline.reports.html import render_html
from tierline.reports.model import Report
from tierline.reports.pdf import render_pdf

_SUFFIXES = (".html", ".htm", ".pdf")


def report_paths(out: Path) -> tuple[Path, Path]:
    """OUT.html and OUT.pdf for `out` given with or without one of those suffixes."""
    out = Path(out)
    base = out.with_suffix("") if out.suffix.lower() in _SUFFIXES else out
    return base.with_name(base.name + ".html"), base.with_name(base.name + ".pdf")


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_report(report: Report, out: Path) -> tuple[Path, Path]:
    """Render `report` and write OUT.html and OUT.pdf (parents created); returns both paths."""
    html_path, pdf_path = report_paths(out)
    html = render_html(report).encode("utf-8")
    pdf = render_pdf(report)  # both rendered before either file is touched
    html_path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(html_path, html)
    _atomic_write(pdf_path, pdf)
    return html_path, pdf_path
