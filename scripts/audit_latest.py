"""The audit where pip-audit's data cannot be reached: PyPI's project JSON (which this
machine can reach) lists the known vulnerabilities of each project's *latest* release only.
So a pin that is the latest release is checked against that list; a pin behind it cannot be
checked here and is named, so it is bumped or audited elsewhere.  Exits 1 on a known
vulnerability, 0 otherwise (printing what went unchecked)."""

from __future__ import annotations

import json
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PROJECT_JSON = "https://pypi.org/pypi/{}/json"


def pins(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in path.read_text().splitlines():
        requirement = line.split("#", 1)[0].split(";", 1)[0].strip()
        if "==" in requirement:
            name, version = requirement.split("==", 1)
            out.append((name.strip(), version.strip()))
    return out


def latest(name: str) -> tuple[str, list[dict[str, object]]]:
    """The project's latest version and the vulnerabilities PyPI lists for it."""
    url = PROJECT_JSON.format(name)  # https only: a fixed scheme and host
    with urllib.request.urlopen(url, timeout=30) as reply:  # noqa: S310
        data = json.load(reply)
    return data["info"]["version"], data.get("vulnerabilities") or []


def main(path: Path) -> int:
    pinned = pins(path)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda pin: latest(pin[0]), pinned))
    vulnerable, unchecked = [], []
    for (name, version), (newest, vulnerabilities) in zip(pinned, answers, strict=True):
        if version != newest:
            unchecked.append(f"{name}=={version} (latest {newest})")
        for vuln in vulnerabilities:
            fixed = ", ".join(map(str, vuln.get("fixed_in") or [])) or "no fix yet"
            vulnerable.append(f"{name}=={version}: {vuln.get('id')} (fixed in: {fixed})")
    checked = len(pinned) - len(unchecked)
    print(f"{checked} of {len(pinned)} pins are their project's latest release and were checked")
    for line in vulnerable:
        print(f"VULNERABLE {line}")
    if unchecked:
        print("not checked (behind the latest release): " + "; ".join(unchecked))
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "constraints.txt")))
