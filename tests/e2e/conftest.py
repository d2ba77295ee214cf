"""
conftest.py: fixtures shared by the end-to-end tests.

`petrel` yields a started daemon with the default configuration
(harness.Petrel()): domain example.test, users alice and bob, no trusted
network. On teardown the daemon must still be running (unless the test
stopped or killed it) and must exit 0 on SIGTERM; its work dir is removed
when the test passed and kept (with the log tail printed) when it failed.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers",
                            "slow_under_sanitizer: skipped when "
                            "PETREL_SANITIZE is set")
    if not os.access(harness.PETREL_BIN, os.X_OK):
        raise pytest.UsageError("no petrel binary at %s (set PETREL_BIN)"
                                % harness.PETREL_BIN)


def pytest_collection_modifyitems(config, items):
    if not harness.SANITIZE:
        return
    skip = pytest.mark.skip(reason="PETREL_SANITIZE is set")
    for item in items:
        if "slow_under_sanitizer" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request):
    for when in ("setup", "call"):
        rep = getattr(request.node, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


@pytest.fixture
def petrel(request):
    p = harness.Petrel()
    try:
        p.start()
    except BaseException:
        p.finish(failed=True)
        raise
    yield p
    p.finish(failed=_failed(request))


@pytest.fixture
def make_petrel(request):
    """Factory: make_petrel(**kw) starts a Petrel(**kw); every one made is
    finished at teardown like the `petrel` fixture."""
    made = []

    def make(start=True, **kw):
        p = harness.Petrel(**kw)
        made.append(p)
        if start:
            p.start()
        return p

    yield make
    failed = _failed(request)
    errors = []
    for p in made:
        try:
            p.finish(failed=failed)
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        raise AssertionError("; ".join(errors))
