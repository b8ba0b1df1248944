"""report.html in a real browser: Debian's headless Chromium (``chromium-headless-shell``,
installed by ``.ci/run``) loads the report, decodes every figure and reports no console error.

The report is copied beside a one-line probe script appended before ``</body>`` that counts
the images the browser has decoded (``naturalWidth > 0``) once the page has loaded and
writes the count into the DOM, which ``--dump-dom`` prints; ``--enable-logging=stderr``
shows console errors.  A screenshot is also taken (and must not be blank).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

import flexplan as fp
from conftest import EVENING, add_fleet, write_feeder

pytestmark = pytest.mark.integration

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser")
PROBE = ("<script>window.addEventListener('load', () => { const imgs = [...document.images]; "
         "const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length; "
         "const p = document.createElement('pre'); p.id = 'probe'; "
         "p.textContent = `PROBE images=${imgs.length} decoded=${ok}`; document.body.appendChild(p); });</script>")


def _browser():
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("no headless Chromium found: .ci/run installs Debian's chromium-headless-shell")
    pytest.skip("no headless Chromium on this machine (apt-get install chromium-headless-shell)")


def _run(browser, *args, timeout=120):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--allow-file-access-from-files",
             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def result_folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    f = write_feeder(tmp / "f", lines=[("l1", "b0", "b1", 0.2, 0.1, 0.45, 1.0)], loads=[("b1", 0.3, 0.05)],
                     profile=[("day", 365, EVENING)], economics="base_year = 2025\nend_year = 2025\nstages = [2025]")
    inst = fp.load_instance(add_fleet(f, "b1", 200, "v2g_share = 0.5\n"))
    rec = {"name": "r", "blocks": ["demand", "ev_fleet", "ageing"], "ev_fleet": {"mode": "v2g"}}
    return fp.solve(fp.build_model(inst, rec)).write(tmp / "out")


def test_report_opens_in_headless_chromium_with_every_figure(result_folder, tmp_path):
    browser = _browser()
    html = (result_folder / "report.html").read_text()
    n_png = len(list(result_folder.glob("*.png")))
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"))
    out = _run(browser, "--dump-dom", probe.as_uri())
    assert out.returncode == 0, out.stderr[-3000:]
    m = re.search(r"PROBE images=(\d+) decoded=(\d+)", out.stdout)
    assert m, out.stdout[-2000:] + out.stderr[-2000:]
    assert int(m.group(1)) == n_png and int(m.group(2)) == n_png, m.group(0)
    errors = [ln for ln in out.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not errors, errors


def test_report_screenshot_is_not_blank(result_folder, tmp_path):
    import matplotlib.image as mpimg
    import numpy as np

    browser = _browser()
    shot = tmp_path / "report.png"
    out = _run(browser, f"--screenshot={shot}", "--window-size=1200,2400", (result_folder / "report.html").as_uri())
    assert out.returncode == 0 and shot.exists(), out.stderr[-3000:]
    img = mpimg.imread(shot)
    assert img.shape[0] >= 2000 and img.shape[1] >= 1100
    assert float(np.std(img[..., :3])) > 0.05  # text and figures, not an empty page
