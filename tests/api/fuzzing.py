"""What the schemathesis tests share: their scale, the checks every answer must pass, and a tally
of what actually ran, so a run can say "N cases, 0 server errors".

Short form (the default, CI): FUZZ_EXAMPLES=30 per operation and mode, FUZZ_SCENARIOS=100 state
machine scenarios of up to FUZZ_STEPS=20 calls: about 3,300 cases in under a minute.
Full form: FUZZ_FULL=1 (or CHAOS_FULL=1, which runs every proof in its full form): 60 per operation
and mode (17 operations: 2,040 stateless cases), 300 scenarios of up to 30 calls. Any
single FUZZ_* variable overrides either form. Runs are derandomized (the same cases every time);
FUZZ_SEED=<n> draws another sequence.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field
from typing import Any, TypeVar

import hypothesis
import pytest
import schemathesis
from schemathesis import Case, Response

T = TypeVar("T")

FULL = any(os.environ.get(name, "") not in ("", "0") for name in ("FUZZ_FULL", "CHAOS_FULL"))

_SHORT = {"EXAMPLES": 30, "SCENARIOS": 100, "STEPS": 20}
_FULL = {"EXAMPLES": 60, "SCENARIOS": 300, "STEPS": 30}


def scale(name: str) -> int:
    """FUZZ_<name> if set, else the full or short default."""
    raw = os.environ.get(f"FUZZ_{name}")
    return int(raw) if raw else (_FULL if FULL else _SHORT)[name]


_SEED = os.environ.get("FUZZ_SEED")
DERANDOMIZE = not _SEED


def seeded(test: T) -> T:
    """`test` (a Hypothesis test or state machine) with FUZZ_SEED's seed, if one is set."""
    return hypothesis.seed(int(_SEED))(test) if _SEED else test


def generate_from_schema_and_seed_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep Hypothesis from mixing the project's own literals into what it generates.

    Hypothesis (6.13x on) draws now and then from the string and number constants of the local
    modules loaded at the time, cached on first use. So the same seed drew other cases whenever
    project code changed anywhere, or other tests had loaded more of it first: a derandomized run
    was the same only until an unrelated edit (a state machine that had followed its links to a
    job stopped reaching one after a change to the batcher's error messages). Without them, a run's
    cases follow from the document and the seed alone, as this module promises. Hypothesis offers
    no switch for it: its provider's two module globals are replaced for the test.
    """
    from hypothesis.internal.cache import LRUCache
    from hypothesis.internal.conjecture import providers
    from hypothesis.internal.constants_ast import Constants

    monkeypatch.setattr(providers, "_get_local_constants", Constants)  # an empty set of constants
    monkeypatch.setattr(providers, "CONSTANTS_CACHE", LRUCache(1024))  # none computed before


# The answers checked against the document: a documented status, the declared content type, a body
# and headers that match the declared schema; and, along a state machine's calls, that a deleted
# connection is gone and a created one is there. Not `negative_data_rejection`: unknown query
# parameters are ignored (as HTTP APIs do), and the stream's ticket is an alternative to the bearer
# header that the document cannot state next to a required one. Not `positive_data_acceptance`: a
# connection's fields depend on its dialect, a cursor is opaque, and a job type filter names the
# types registered at run time, none of which a JSON schema says.
CHECKS = [
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]
STATEFUL_CHECKS = [
    *CHECKS,
    schemathesis.checks.use_after_free,
    schemathesis.checks.ensure_resource_availability,
]


def server_error(case: Case, response: Response) -> bool:
    """A 5xx the contract does not call for. A connection's database that cannot be reached is a
    502 by contract, on the two operations that connect to it (and document it)."""
    if response.status_code < 500:
        return False
    return not (response.status_code == 502 and "502" in case.operation.responses.status_codes)


@dataclass
class Tally:
    """Every call made, by operation and status, and each distinct failure once (with an example)."""

    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    server_errors: int = 0
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def check(self, case: Case, response: Response, checks: list[Any], **validate: Any) -> None:
        """Count this call, then run the checks on its answer; failures are kept, not raised."""
        label = f"{case.method} {case.operation.path}"
        self.calls[f"{label} {response.status_code}"] += 1
        example = f"{case.as_curl_command()}\n  -> {response.status_code}: {response.text[:300]}"
        if server_error(case, response):
            self.server_errors += 1
            self.failures.setdefault(f"{label} -> {response.status_code}", example)
        try:
            case.validate_response(response, checks=checks, **validate)
        except BaseExceptionGroup as group:  # schemathesis's FailureGroup: one per failed check
            for failure in group.exceptions:
                title = getattr(failure, "title", type(failure).__name__)
                self.failures.setdefault(
                    f"{label} -> {response.status_code}: {title}", f"{failure}\n  {example}"
                )

    def report(self, name: str) -> str:
        statuses: collections.Counter[str] = collections.Counter()
        for key, count in self.calls.items():
            statuses[key.rsplit(" ", 1)[1]] += count
        return (
            f"{name}: {self.total} cases, {self.server_errors} server errors, "
            f"{len(self.failures)} distinct failures; by status {dict(sorted(statuses.items()))}"
        )

    def assert_clean(self, name: str, capsys: pytest.CaptureFixture[str], at_least: int) -> None:
        """Print the tally past pytest's capture, then require no failure and enough cases run."""
        with capsys.disabled():
            print(f"\n{self.report(name)}")
        assert not self.failures, "\n\n".join(f"{k}\n  {v}" for k, v in list(self.failures.items())[:10])
        assert self.total >= at_least, f"only {self.total} cases ran, fewer than {at_least}"
