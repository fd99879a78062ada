#!/usr/bin/env python3
"""Compares an Autobahn report (index.json) with the committed expectation.

Usage: compare.py INDEX_JSON EXPECTED_JSON AGENT [--write]

Prints the count of each result and every case whose behavior or close
behavior differs from the expectation; exits 1 on any difference. With
--write, writes the report's results as the new expectation instead.
"""
import json
import sys
from collections import Counter


def case_key(case):
    return tuple(int(part) for part in case.split("."))


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    index_path, expected_path, agent = sys.argv[1:4]
    with open(index_path) as f:
        report = json.load(f)[agent]
    results = {
        case: {"behavior": r["behavior"], "behaviorClose": r["behaviorClose"]}
        for case, r in report.items()
    }
    if "--write" in sys.argv[4:]:
        ordered = {case: results[case] for case in sorted(results, key=case_key)}
        with open(expected_path, "w") as f:
            json.dump(ordered, f, indent=1)
            f.write("\n")
        print("wrote %d cases to %s" % (len(ordered), expected_path))
        return 0
    with open(expected_path) as f:
        expected = json.load(f)

    counts = Counter(r["behavior"] for r in results.values())
    print("results: " + ", ".join("%s %d" % kv for kv in sorted(counts.items())))
    differences = []
    for case in sorted(set(expected) | set(results), key=case_key):
        want, got = expected.get(case), results.get(case)
        if want != got:
            differences.append((case, want, got))
    for case, want, got in differences:
        print("  case %s: expected %s, got %s" % (case, want, got))
    if differences:
        print("%d case(s) differ from %s" % (len(differences), expected_path))
        return 1
    print("all %d cases as expected" % len(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
