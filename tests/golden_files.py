"""Golden files (tests/golden/): compiled output compared byte for byte; ESA_UPDATE_GOLDEN=1 rewrites them."""

import os
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("ESA_UPDATE_GOLDEN") == "1"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; rerun with ESA_UPDATE_GOLDEN=1 if intended"
