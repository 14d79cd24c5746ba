"""Report pages in headless Chromium (Debian's ``chromium``, which `.ci/run` installs as
root): each page records on its root element how many images it has, how many
loaded and how many errors it raised (`bitfab.hls_gen.compiler.html_report`);
Chromium loads the page, runs its script and prints the DOM it ends with."""

import re
import shutil
import subprocess

__all__ = ["CHROMIUM", "NO_CHROMIUM", "page_checks"]

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser",
                                                 "google-chrome")
                 if shutil.which(name)), None)
NO_CHROMIUM = "no chromium on PATH (.ci/run installs Debian's as root: apt-get install chromium)"


def page_checks(path):
    """{"images": n, "images-loaded": n, "script-errors": n} for the page at `path`, as
    its script recorded them in headless Chromium."""
    run = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--virtual-time-budget=10000", "--dump-dom", path.resolve().as_uri()],
        capture_output=True, text=True, timeout=180)
    root = re.search(r"<html[^>]*>", run.stdout)
    assert root, f"chromium printed no page for {path} (rc {run.returncode}): {run.stderr[-2000:]}"
    checks = {k: int(v) for k, v in re.findall(r'data-([a-z-]+)="(\d+)"', root.group(0))}
    assert set(checks) == {"images", "images-loaded", "script-errors"}, (
        f"{path}: the page's check never ran: {root.group(0)}")
    return checks
