"""Fail unless the run executed PostgreSQL- and Redis-backed tests and skipped none."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def main(path: str) -> int:
    cases = list(ET.parse(path).getroot().iter("testcase"))
    skipped = [c for c in cases if c.find("skipped") is not None]
    ran = [c for c in cases if c.find("skipped") is None]
    postgres = [c for c in ran if "postgres" in c.get("name", "")]
    redis = [c for c in ran if "redis" in (c.get("name", "") + c.get("classname", "")).lower()]
    print(f"{len(cases)} tests: {len(ran)} ran, {len(skipped)} skipped;"
          f" {len(postgres)} on PostgreSQL, {len(redis)} with Redis")
    for case in skipped:
        print("skipped:", case.get("classname"), case.get("name"))
    if skipped or not postgres or not redis:
        print("FAIL: in CI every suite must run, PostgreSQL and Redis ones included")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
