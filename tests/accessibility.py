"""axe-core (the copy axe-playwright-python ships) run in Chromium: no violations allowed."""

from axe_playwright_python.sync_playwright import Axe

_axe = Axe()


def assert_accessible(page) -> None:
    """Every axe rule for WCAG 2.0/2.1 A and AA, plus best practices, on the page as it is now."""
    results = _axe.run(
        page,
        options={
            "resultTypes": ["violations"],
            "runOnly": {
                "type": "tag",
                "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"],
            },
        },
    )
    violations = results.response["violations"]
    assert violations == [], f"{page.url}: " + "; ".join(
        f"{v['id']}: {v['help']} ({', '.join(n['target'][0] for n in v['nodes'])})"
        for v in violations
    )
