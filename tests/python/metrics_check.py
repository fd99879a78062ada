#!/usr/bin/env python3
"""Parses Prometheus text exposition from stdin with prometheus_client's own
parser and prints what it read as JSON on stdout:

    {"families": [{"name": ..., "type": ..., "samples": [{"name": ..., "labels": {...}, "value": ...}]}]}

Any parse error raises, which ends the script with a traceback and a non-zero
status. Exits with status 3 when prometheus_client is not installed.

Used by tests/operations.rs.
"""

import json
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as error:
    sys.stderr.write(
        f"prometheus_client is missing ({error}): install it: "
        "python3 -m pip install prometheus_client; tests/run does\n"
    )
    sys.exit(3)


def main() -> None:
    text = sys.stdin.read()
    families = []
    for family in text_string_to_metric_families(text):
        samples = [{"name": s.name, "labels": dict(s.labels), "value": s.value} for s in family.samples]
        families.append({"name": family.name, "type": family.type, "samples": samples})
    # A NaN or infinite value is not JSON: it fails here rather than confuse the reader.
    json.dump({"families": families}, sys.stdout, allow_nan=False)


if __name__ == "__main__":
    main()
