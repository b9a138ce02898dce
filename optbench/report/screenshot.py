"""Open a report in headless Chromium: page errors, whether the plots drew, a screenshot.

Uses Playwright's Python driver with the system Chromium (Debian's `chromium` package, or
$OPTBENCH_CHROMIUM): no browser download, no network. The flags are those that keep
Chromium from reaching out on a closed network.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from optbench.errors import OptbenchError

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class PageCheck:
    errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    plots_drawn: int = 0
    plot_divs: int = 0
    text: str = ""


def chromium_path() -> str | None:
    candidate = os.environ.get("OPTBENCH_CHROMIUM")
    if candidate:
        return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def check_page(html: Path, png: Path | None = None) -> PageCheck:
    """Load `html` from disk in headless Chromium and report what happened."""
    executable = chromium_path()
    if executable is None:
        raise OptbenchError("no Chromium found: install Debian's chromium package (apt-get "
                            "install chromium) or set OPTBENCH_CHROMIUM")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise OptbenchError("screenshots need playwright: pip install playwright (the "
                            "system Chromium is used; no browser download)") from exc
    check = PageCheck()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda e: check.errors.append(str(e)))
            page.on("console", lambda m: check.console_errors.append(m.text)
                    if m.type == "error" else None)

            def on_dialog(dialog) -> None:  # noqa: ANN001 - playwright's Dialog
                check.dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)
            page.goto(html.resolve().as_uri(), wait_until="load")
            page.wait_for_timeout(500)
            check.plots_drawn = int(page.get_attribute("body", "data-plots-drawn") or 0)
            check.plot_divs = page.locator(".plot .main-svg").count()
            check.text = page.inner_text("body")
            if png is not None:
                page.screenshot(path=str(png), full_page=True)
        finally:
            browser.close()
    return check
