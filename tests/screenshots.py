"""Screenshots from browser tests: tests/artifacts/ always, docs/screenshots/ on request.

``SAVE_SCREENSHOTS=1 make test`` refreshes the README's tour; ordinary runs
leave the committed images alone.
"""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def save_screenshot(page, name: str) -> None:
    folder = ROOT / (
        "docs/screenshots" if os.environ.get("SAVE_SCREENSHOTS") == "1" else "tests/artifacts"
    )
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
