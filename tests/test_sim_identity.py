"""The simulator's results are frozen: every setup of `scripts/sim_identity_check.py` must reproduce the
stored fingerprints (records with exact token timestamps, iteration log, summary) bit for bit.

A speed-up of the simulator, a policy or the metrics must keep this test passing unchanged. A change
that is *meant* to alter results rewrites the file on purpose (``python scripts/sim_identity_check.py --write``)
and says so in its commit message.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "sim_identity_check.py"
_spec = importlib.util.spec_from_file_location("sim_identity_check", _SCRIPT)
assert _spec is not None and _spec.loader is not None
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)

_STORED = json.loads(check.STORE.read_text())


def test_every_setup_is_stored() -> None:
    assert set(_STORED) == set(check.setups())


@pytest.mark.parametrize("name", sorted(_STORED))
def test_simulation_is_bit_identical(name: str) -> None:
    assert check.fingerprint(check.setups()[name]) == _STORED[name]
