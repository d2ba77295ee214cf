"""
test_conformance_copy.py: tests/data/conformance is an unchanged copy of
the conformance material written by others (../shared/conformance beside
the checkout). The tests read the copy, because CI has no ../shared; this
test proves, wherever ../shared is present, that the copy holds every file
of it byte for byte and nothing else, so no test can pass on edited data.
"""
import filecmp
import os

import pytest

import harness

SHARED = os.path.join(harness.SOURCE_DIR, "..", "shared", "conformance")
COPY = os.path.join(harness.SOURCE_DIR, "tests", "data", "conformance")


def tree(root):
    out = set()
    for d, _, files in os.walk(root):
        for f in files:
            out.add(os.path.relpath(os.path.join(d, f), root))
    return out


def test_copy_equals_shared():
    if not os.path.isdir(SHARED):
        pytest.skip("no ../shared/conformance beside this checkout")
    shared, copy = tree(SHARED), tree(COPY)
    assert shared == copy, ("only in ../shared: %s; only in the copy: %s"
                            % (sorted(shared - copy), sorted(copy - shared)))
    differ = [f for f in sorted(shared)
              if not filecmp.cmp(os.path.join(SHARED, f),
                                 os.path.join(COPY, f), shallow=False)]
    assert differ == []


def test_copy_has_the_suites():
    # Present in every checkout, CI's included.
    for rel in ("spf/rfc7208-tests.yml", "dkim/README.md",
                "dmarc/README.md", "smtp/smuggling-eod-variants.json"):
        assert os.path.isfile(os.path.join(COPY, rel)), rel
