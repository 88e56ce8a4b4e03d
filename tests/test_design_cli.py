"""``tierline design`` and ``tierline inference`` through the real console script, and the
``/v1/design``, ``/v1/inference`` and ``/v1/charts/tpp-density.svg`` routes on a real server.

Hand arithmetic: 598.75 x 8 = 4,790 TPP, 4800 / 4790 = 1.00209 -> +0.21% to reach 3A090.a.1;
the largest fp8 rate below a.1 is 4800 / 8 = 600. H20 / H100 SXM decode at batch 1 is bandwidth-bound,
so the ratio is 4.0 / 3.35 (chips-notes.md §5).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from api_server import Key, Server, running_server
from helpers import run_cli
from tierline.catalog import catalog
from tierline.charts import DesignPoint
from tierline.errors import TierlineError

DAY = "2026-06-01"
SVG = "{http://www.w3.org/2000/svg}"
REGIONS = ("3A090.a.1", "3A090.a.2", "3A090.b.1", "3A090.b.2", "not 3A090")
INFERENCE = ["--parameters", "70e9", "--bytes-per-weight", "1", "--kv-bytes-per-token", "327680", "--context", "4096"]


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def chip_groups(root: ET.Element) -> dict[str, str]:
    """chip id -> the label drawn in its group."""
    out = {}
    for group in root.iter(f"{SVG}g"):
        if group.get("class") == "chip":
            label = " ".join(texts(group))
            for chip_id in group.get("data-ids", "").split():
                out[chip_id] = label
    return out


# ---- tierline design ---------------------------------------------------------------------------------
def test_design_json(tmp_path):
    r = run_cli("design", "--rate", "fp8=598.75", "--die-area", "798.5", "--as-of", DAY, "--json")
    assert r.code == 0, r.stderr
    data = r.json()
    assert data["tpp"] == 4790 and data["classification"]["paragraph"] == "3A090.a.2"  # 4790 / 798.5 = 5.9987
    assert data["smallest_change"]["change"] == "scale all rates by 1.0021 (+0.21%)"
    assert data["smallest_change"]["after"] == "3A090.a.1"
    fp8 = next(x for x in data["ceilings"]["entries"][0]["rates"] if x["precision"] == "fp8")
    assert fp8["exact"] == "600"
    assert {v["vintage"] for v in data["by_vintage"]} == {"ear-2023", "ai-diffusion", "enforcement-posture"}
    a1 = next(x for x in data["lines"] if x["line"] == "a1.tpp_min")
    assert a1["difference"] == -10 and a1["side"] == "below" and a1["parameter"]["confidence"] == "primary"
    assert data["vintage"] == "ai-diffusion" and data["as_of"] == DAY


def test_design_tables_and_mac_input():
    r = run_cli("design", "--mac", "540672@1.83:8", "--die-area", "814", "--memory-bandwidth", "3350", "--as-of", DAY)
    assert r.code == 0, r.stderr
    # 2 x 540,672 x 1.83 / 1000 = 1,978.86 TOPS x 8 = 15,830.88 TPP
    assert "15,830.88" in r.stdout
    for words in ("Classification by vintage", "Distance to each line", "Smallest change of paragraph", "China 2026"):
        assert words in r.stdout


def test_design_chart_has_regions_and_every_plotted_chip(tmp_path):
    out = tmp_path / "plane.svg"
    r = run_cli("design", "--rate", "fp8=598.75", "--die-area", "798.5", "--as-of", DAY, "--chart", str(out))
    assert r.code == 0, r.stderr
    root = ET.parse(out).getroot()
    words = texts(root)
    for region in REGIONS:
        assert region in words, region
    assert any(w.startswith("design: TPP 4,790") for w in words)
    groups = chip_groups(root)
    # plotted: every catalogue chip with dense rates and a die area
    expected = {c.id for c in catalog().values() if c.rates and c.die_area_mm2}
    assert set(groups) == expected
    for chip_id, label in groups.items():
        assert catalog()[chip_id].model in label, chip_id


def test_design_errors_exit_2():
    cases = [
        (["--rate", "fp8=100", "--die-area", "0"], "error: die_area[0]:"),
        (["--rate", "fp8=100", "--die-area", "-5"], "error: die_area[0]:"),
        (["--rate", "fp8=100", "--memory-bandwidth", "0.5"], "GB/s"),
        (["--rate", "fp8=100", "--memory-bandwidth", "3350000000"], "error: memory_bandwidth:"),
        (["--mac", "12x"], "error: mac[0]:"),
        (["--rate", "fp7=100"], "error: rate.fp7:"),
        (["--rate", "fp8=100", "--line", "z"], "error: line:"),
    ]
    for args, words in cases:
        r = run_cli("design", *args, "--as-of", DAY)
        assert r.code == 2, (args, r.stdout, r.stderr)
        assert words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


# ---- tierline inference ------------------------------------------------------------------------------
def test_inference_json_h20_against_h100():
    r = run_cli(
        "inference", "--chip", "H100 SXM5", "--chip", "H20", *INFERENCE, "--batch", "1", "--as-of", DAY, "--json"
    )
    assert r.code == 0, r.stderr
    rows = {row["chip"]: row for row in r.json()["chips"]}
    h100, h20 = rows["nvidia-h100-sxm5-80gb"], rows["nvidia-h20-hgx-sxm-96gb"]
    assert h100["decode"]["binding"] == h20["decode"]["binding"] == "memory bandwidth"
    assert h100["prefill"]["binding"] == h20["prefill"]["binding"] == "compute"
    assert math.isclose(h20["decode"]["tokens_per_s"] / h100["decode"]["tokens_per_s"], 4.0 / 3.35, rel_tol=1e-9)


def test_inference_table_and_compare_chart(tmp_path):
    out = tmp_path / "bandwidth.svg"
    r = run_cli("inference", "--compare", "--chip", "H20", *INFERENCE, "--as-of", DAY, "--chart", str(out))
    assert r.code == 0, r.stderr
    assert "decode tok/s" in r.stdout and "memory bandwidth" in r.stdout and "FLOPs = 2 × active_params" in r.stdout
    root = ET.parse(out).getroot()
    groups = chip_groups(root)
    assert "nvidia-h20-hgx-sxm-96gb" in groups and "nvidia-h100-sxm5-80gb" in groups
    for chip_id, label in groups.items():
        assert catalog()[chip_id].model in label, chip_id
    assert any(w.endswith("tok/s") for w in texts(root))  # the iso-throughput lines are labelled


def test_inference_errors_exit_2():
    cases = [
        (["--chip", "H100", *INFERENCE, "--batch", "0"], "error: batch:"),
        (["--chip", "H100", *INFERENCE, "--active-parameters", "80e9"], "error: active_parameters:"),
        (["--chip", "H100", *INFERENCE, "--precision", "fp7"], "error: precision:"),
        ([*INFERENCE], "error: chip:"),
        (["--chip", "no-such-chip-xyz", *INFERENCE], "error: chip:"),
    ]
    for args, words in cases:
        r = run_cli("inference", *args, "--as-of", DAY)
        assert r.code == 2, (args, r.stdout, r.stderr)
        assert words in r.stderr, (args, r.stderr)


# ---- HTTP --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server("sqlite", tmp_path_factory.mktemp("api-design")) as running:
        yield running


@pytest.fixture(scope="module")
def viewer(server: Server) -> Key:
    return server.create_key("viewer")


def test_api_design(server: Server, viewer: Key):
    body = {"rates": ["fp8=598.75"], "die_areas_mm2": [798.5], "as_of": DAY}
    with server.client(viewer) as client:
        r = client.post("/v1/design", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["smallest_change"]["after"] == "3A090.a.1"
        bad = client.post(
            "/v1/design", json={"rates": ["fp8=100"], "die_areas_mm2": [100], "memory_bandwidth_gbs": 0.5}
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "memory_bandwidth_gbs"  # the body field
        bad = client.post("/v1/design", json={"rates": ["fp8=100"], "die_areas_mm2": [100], "macs": ["1@1:8"]})
        assert bad.json()["errors"][0]["field"] == "rates"
        bad = client.post("/v1/design", json={"macs": ["12x"]})
        assert bad.json()["errors"][0]["field"] == "macs[0]"
    with server.client() as anonymous:
        assert anonymous.post("/v1/design", json=body).status_code == 401


def test_api_inference(server: Server, viewer: Key):
    body = {"chips": ["H100 SXM5", "H20"], "parameters": 70e9, "bytes_per_weight": 1, "as_of": DAY}
    with server.client(viewer) as client:
        r = client.post("/v1/inference", json=body)
        assert r.status_code == 200, r.text
        rows = r.json()["chips"]
        assert math.isclose(rows[1]["decode"]["tokens_per_s"] / rows[0]["decode"]["tokens_per_s"], 4.0 / 3.35)
        bad = client.post("/v1/inference", json={**body, "active_parameters": 80e9})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "active_parameters"


def test_api_chart(server: Server, viewer: Key):
    with server.client(viewer) as client:
        r = client.get("/v1/charts/tpp-density.svg", params={"as_of": DAY, "tpp": 4790, "pd": 6})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(r.content)
    assert "3A090.a.1" in texts(root)
    assert any(w.startswith("design: TPP 4,790") for w in texts(root))
    with server.client(viewer) as client:  # a point no log axis can place is refused, not a 500
        for query in ({"tpp": "5e-324"}, {"tpp": "1", "pd": "5e-324"}):
            assert client.get("/v1/charts/tpp-density.svg", params=query).status_code == 422


def test_chart_refuses_points_it_cannot_place():
    with pytest.raises(TierlineError) as err:
        DesignPoint(5e-324, None)
    assert err.value.field == "tpp"
    with pytest.raises(TierlineError) as err:
        DesignPoint(4790, 0.0)
    assert err.value.field == "pd"


def test_chart_file_unwritable(tmp_path: Path):
    r = run_cli("design", "--rate", "fp8=100", "--chart", str(tmp_path / "no" / "such" / "dir.svg"))
    assert r.code == 2 and "error: chart:" in r.stderr
