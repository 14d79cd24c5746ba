"""``report.html``: the checks a headless browser makes on a report page catch an image
that does not load and a script that fails (the demo's and the builds' pages are
opened in `test_digits.py`), and a build page shows its plots from ``report.json``
alone."""

import pytest

from bitfab.hls_gen.compiler.html_report import build_page

from browser import CHROMIUM, NO_CHROMIUM, page_checks

#: A build's report.json as the flow writes it, reduced to what its page reads.
REPORT = {
    "board": "ulx3s-85f",
    "rtl": {"images": 450, "mismatches": 0, "simulator": "verilator", "seed": 1,
            "beats_checked": 9000, "golden_vs_rtl_agreement": 1.0},
    "luts": 6605, "ffs": 5684, "brams": 13, "dsps": 9, "fmax_mhz": 130.28, "clock_mhz": 100.0,
    "timing_met": True, "cycles_per_image": 16.0, "schedule_cycles_per_image": 16,
    "images_per_s_at_clock": 6250000, "bitstream": "synth/build/bitfab.bit",
    "critical_path": {"ns": 7.68, "routing_ns": 4.18, "text": "7.68 ns (4.18 routing): a -> b"},
    "estimate": {"luts": 2435, "ffs": 4568, "brams": 14, "dsps": 9},
    "nodes": [{"name": "fc0", "kind": "layer", "cycles_per_image": 16, "fifo_depth": 22,
               "estimate": {"luts": 2128, "ffs": 4196, "brams": 9, "dsps": 4}},
              {"name": "fc1", "kind": "layer", "cycles_per_image": 8, "fifo_depth": 4,
               "estimate": {"luts": 307, "ffs": 372, "brams": 5, "dsps": 5}}],
}


def test_a_build_page_has_its_plots_and_says_what_the_simulation_found():
    page = build_page(REPORT)
    # Cycles by node, estimate vs placed, LUTs by node and kind, FIFO depths, timing.
    assert page.count('<img src="data:image/png;base64,') == 5
    assert "0 mismatches between the RTL and the golden model in 450 images" in page
    assert "<td>2.32</td>" in page          # slack: 10 ns - 7.68 ns
    unsimulated = build_page({**REPORT, "rtl": None, "fmax_mhz": None, "luts": None})
    assert "No simulation in this build" in unsimulated
    assert unsimulated.count("<img ") == 4   # no timing plot without place and route


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_the_browser_check_finds_a_missing_image_and_a_failing_script(tmp_path):
    good = tmp_path / "good.html"
    good.write_text(build_page(REPORT))
    assert page_checks(good) == {"images": 5, "images-loaded": 5, "script-errors": 0}
    broken = tmp_path / "broken.html"
    broken.write_text(build_page(REPORT).replace(
        "</body>", '<img src="missing.png"><script>notAFunction();</script></body>'))
    checks = page_checks(broken)
    assert checks["images"] == 6 and checks["images-loaded"] == 5
    assert checks["script-errors"] == 2       # the image's load error and the script's
