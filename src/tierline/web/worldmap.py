"""The world map, drawn on the server as SVG from the TopoJSON shipped in ``static/``.

``countries-110m.json`` is world-atlas 2.0.2 (ISC licence; Natural Earth 1:110m, public domain). Its
ids are ISO 3166-1 numeric codes, mapped to ISO2 with pycountry; the three shapes without an id are
Kosovo (XK), Northern Cyprus (drawn with Cyprus) and Somaliland (drawn with Somalia), as ISO 3166
counts them. Destinations too small for the 1:110m data get a marker at the position in
``markers.json``, so every destination tierline knows is on the map exactly once. The projection is
Equal Earth (Šavrič, Patterson and Jenny, 2018).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

import pycountry

from tierline.countries import all_countries
from tierline.groups import country_groups, ear_destination
from tierline.policy import Context
from tierline.tiers import tier_of

STATIC = Path(str(resources.files("tierline") / "web" / "static"))
WIDTH = 960.0
UNNAMED = {"Kosovo": "XK", "N. Cyprus": "CY", "Somaliland": "SO"}
TIER_NAMES = {1: "Tier 1", 2: "Tier 2", 3: "Tier 3", 0: "no tiers"}

_A1, _A2, _A3, _A4 = 1.340264, -0.081106, 0.000893, 0.003796
_M = math.sqrt(3) / 2


def equal_earth(lon: float, lat: float) -> tuple[float, float]:
    """Equal Earth projection of degrees to unit coordinates (x east, y north)."""
    lam, phi = math.radians(lon), math.radians(lat)
    theta = math.asin(_M * math.sin(phi))
    t2 = theta * theta
    t6 = t2 * t2 * t2
    x = 2 * math.sqrt(3) * lam * math.cos(theta) / (3 * (_A1 + 3 * _A2 * t2 + t6 * (7 * _A3 + 9 * _A4 * t2)))
    y = theta * (_A1 + _A2 * t2 + t6 * (_A3 + _A4 * t2))
    return x, y


_XMAX = equal_earth(180, 0)[0]
_YMAX = equal_earth(0, 90)[1]
SCALE = WIDTH / (2 * _XMAX)
HEIGHT = round(2 * _YMAX * SCALE, 1)


def project(lon: float, lat: float) -> tuple[float, float]:
    """Degrees to SVG pixels."""
    x, y = equal_earth(lon, lat)
    return (x + _XMAX) * SCALE, (_YMAX - y) * SCALE


@dataclass(frozen=True)
class Geometry:
    """One destination's outline (SVG path data) or marker position."""

    iso2: str
    path: str | None
    marker: tuple[float, float] | None


def _arcs(topo: dict[str, Any]) -> list[list[tuple[float, float]]]:
    """The arcs in degrees (longitude, latitude)."""
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    out = []
    for arc in topo["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((x * sx + tx, y * sy + ty))
        out.append(points)
    return out


def _rings(arcs: list[list[tuple[float, float]]], indices: list[int]) -> list[str]:
    """One ring as SVG path data: longitudes unwrapped across the antimeridian (the map is clipped to
    the sphere, so a ring that runs past 180 degrees is drawn again shifted by 360); a ring that goes
    round a pole (Antarctica) is closed along the pole line."""
    points: list[tuple[float, float]] = []
    for i in indices:
        arc = arcs[i] if i >= 0 else arcs[~i][::-1]
        points += arc if not points else arc[1:]
    unwrapped = [points[0]]
    for lon, lat in points[1:]:
        prev = unwrapped[-1][0]
        while lon - prev > 180:
            lon -= 360
        while lon - prev < -180:
            lon += 360
        unwrapped.append((lon, lat))
    winding = unwrapped[-1][0] - unwrapped[0][0]
    if abs(winding) > 180:  # round a pole: close along it
        pole = -90.0 if min(lat for _, lat in unwrapped) < 0 else 90.0
        unwrapped += [(unwrapped[-1][0], pole), (unwrapped[0][0], pole)]
    lons = [lon for lon, _ in unwrapped]
    shifts = [0.0] + ([-360.0] if max(lons) > 180 else []) + ([360.0] if min(lons) < -180 else [])
    return [_path([(lon + shift, lat) for lon, lat in unwrapped]) for shift in shifts]


def _path(ring: list[tuple[float, float]]) -> str:
    projected = [project(lon, lat) for lon, lat in ring]
    kept: list[tuple[float, float]] = []
    for x, y in projected:  # drop points closer than half a pixel to the last one kept
        if kept and abs(x - kept[-1][0]) < 0.5 and abs(y - kept[-1][1]) < 0.5:
            continue
        kept.append((x, y))
    if len(kept) < 3:
        kept = projected[:: max(1, len(projected) // 3)]
    return "M" + "L".join(f"{x:.1f} {y:.1f}" for x, y in kept) + "Z"


@functools.cache
def geometries() -> dict[str, Geometry]:
    """Every destination's shape or marker, keyed by ISO2, in tierline's destination order."""
    topo = json.loads((STATIC / "countries-110m.json").read_text(encoding="utf-8"))
    arcs = _arcs(topo)
    paths: dict[str, list[str]] = {}
    for geometry in topo["objects"]["countries"]["geometries"]:
        code = geometry.get("id")
        found = pycountry.countries.get(numeric=code) if code else None
        iso2 = found.alpha_2 if found else UNNAMED.get(geometry.get("properties", {}).get("name", ""))
        if iso2 is None:
            continue
        polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        paths.setdefault(iso2, []).extend(d for polygon in polygons for ring in polygon for d in _rings(arcs, ring))
    markers = json.loads((STATIC / "markers.json").read_text(encoding="utf-8"))["markers"]
    out: dict[str, Geometry] = {}
    for iso2 in all_countries():
        if iso2 in paths:
            out[iso2] = Geometry(iso2, "".join(paths[iso2]), None)
        elif iso2 in markers:
            out[iso2] = Geometry(iso2, None, project(*markers[iso2]))
    return out


@dataclass(frozen=True)
class MapEntry:
    """What the map says about one destination on a date."""

    iso2: str
    name: str
    tier: int  # 0 when the vintage has no tiers
    groups: list[str]
    note: str


def map_entries(ctx: Context) -> list[MapEntry]:
    """Every destination's tier (0 when the vintage has no tiers) and Country Groups on the date,
    with a scenario's group changes when the context has one."""
    groups = country_groups()
    tiers_apply = ctx.vintage.has("tiers")
    out = []
    for country in all_countries().values():
        dest = ear_destination(country, ctx.as_of)
        note = f"treated as {dest.ear.name}" if dest.ear is not dest.country else ""
        tier = tier_of(country, ctx).tier if tiers_apply else 0
        listed = groups.groups_of(dest.ear.iso2, ctx.as_of, ctx.reform)
        out.append(MapEntry(country.iso2, country.name, tier, listed, note))
    return out


def page_query(ctx: Context) -> str:
    """The date, vintage and scenario of a page, as a query string for its links."""
    reform = {"scenario": ctx.reform.name} if ctx.reform is not None else {}
    return urlencode({"date": ctx.as_of.isoformat(), "vintage": ctx.vintage.name, **reform})


def map_svg(ctx: Context, link: str = "/dashboard/country/") -> str:
    """The world coloured by tier on the context's date; every destination is one link with a tooltip."""
    shapes = geometries()
    query = page_query(ctx)
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='worldmap' viewBox='0 0 {WIDTH:.0f} {HEIGHT}' "
        f"role='group' aria-labelledby='map-title'>",
        f"<title id='map-title'>World map of AI Diffusion tiers on {ctx.as_of.isoformat()} "
        f"(vintage {escape(ctx.vintage.name)})</title>",
        f"<defs><clipPath id='sphere-clip'><path d='{_sphere()}'/></clipPath></defs>",
        f"<path class='sphere' d='{_sphere()}'/><g clip-path='url(#sphere-clip)'>",
    ]
    markers: list[str] = []
    for entry in map_entries(ctx):
        geometry = shapes.get(entry.iso2)
        if geometry is None:
            continue
        tier = TIER_NAMES[entry.tier]
        groups = ", ".join(entry.groups) or "none"
        label = f"{entry.name} ({entry.iso2}): {tier}" + (f", {entry.note}" if entry.note else "")
        tip = f"{label}. Country Groups: {groups}"
        element = (
            f"<path d='{geometry.path}'/>"
            if geometry.path
            else f"<circle cx='{geometry.marker[0]:.1f}' cy='{geometry.marker[1]:.1f}' r='3.2'/>"
            if geometry.marker
            else ""
        )
        kind = "shape" if geometry.path else "marker"
        markup = (
            f"<a href={quoteattr(f'{link}{entry.iso2}?{query}')} class='country {kind} t{entry.tier}' "
            f"data-iso2='{entry.iso2}' data-tier='{entry.tier or 'none'}' aria-label={quoteattr(tip)}>"
            f"<title>{escape(tip)}</title>{element}</a>"
        )
        (parts if geometry.path else markers).append(markup)
    parts.append("</g>")
    parts += markers  # markers above the shapes
    parts.append("</svg>")
    return "".join(parts)


@functools.cache
def _sphere() -> str:
    edge = [project(-180, lat) for lat in range(-90, 91, 5)] + [project(180, lat) for lat in range(90, -91, -5)]
    return "M" + "L".join(f"{x:.1f} {y:.1f}" for x, y in edge) + "Z"


def month_dates(start: dt.date = dt.date(2023, 1, 1), end: dt.date = dt.date(2026, 12, 1)) -> list[dt.date]:
    """The first of every month from `start` to `end`: the steps of the map's date slider."""
    out, day = [], start
    while day <= end:
        out.append(day)
        day = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return out
