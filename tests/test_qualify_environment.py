"""Environment capture: parsers fed recorded tool output, a fake nvidia-smi on PATH, model hashing, no heavy imports."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from slobench.errors import UserError
from slobench.qualify.environment import (
    capture_environment,
    git_state,
    parse_cpu_model,
    parse_gpu_csv,
    parse_mem_total_bytes,
)

ROOT = Path(__file__).resolve().parents[1]

# Recorded shapes: an H200 with every field, an H100 whose power limit the driver does not report.
H200 = "NVIDIA H200, 570.124.06, 143771, 1980, 3201, 700.00, 00000000:19:00.0"
H100_NA = "NVIDIA H100 80GB HBM3, 550.54.15, 81559, 1980, 2619, [N/A], 00000000:3B:00.0"


def test_parse_gpu_csv_reads_h200_and_h100_with_na() -> None:
    gpus, unparsed = parse_gpu_csv(f"{H200}\n\n{H100_NA}\n")
    assert unparsed == []
    assert gpus[0] == {"name": "NVIDIA H200", "driver_version": "570.124.06", "memory_total_mib": 143771.0,
                       "clocks_max_sm_mhz": 1980.0, "clocks_max_mem_mhz": 3201.0, "power_limit_w": 700.0,
                       "pci_bus_id": "00000000:19:00.0"}
    assert gpus[1]["name"] == "NVIDIA H100 80GB HBM3" and gpus[1]["power_limit_w"] is None
    assert gpus[1]["memory_total_mib"] == 81559.0


def test_parse_gpu_csv_returns_a_line_it_does_not_understand() -> None:
    gpus, unparsed = parse_gpu_csv(f"{H200}\nNo devices were found, 1\n")
    assert len(gpus) == 1 and unparsed == ["No devices were found, 1"]
    assert parse_gpu_csv("") == ([], [])


def test_parse_cpu_model_and_mem_total() -> None:
    cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\n"
    assert parse_cpu_model(cpuinfo) == "AMD EPYC 9654 96-Core Processor"
    assert parse_cpu_model("processor\t: 0\nCPU part\t: 0xd4f\n") is None
    assert parse_mem_total_bytes("MemTotal:       131072000 kB\nMemFree: 1 kB\n") == 131072000 * 1024
    assert parse_mem_total_bytes("garbage") is None


def _fake_tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder as the whole PATH: no nvidia-smi (and no git) unless a test puts one there."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    return folder


def test_no_nvidia_smi_gives_no_gpus_and_says_why(bin_dir: Path) -> None:
    env = capture_environment(engine="sim")
    assert env["gpus"] == [] and env["gpu_query"] == "nvidia-smi not found"
    assert env["slobench"]["git"] == {"sha": "unknown", "dirty": None}  # no git on PATH either: never raises


def test_a_fake_nvidia_smi_is_parsed(bin_dir: Path) -> None:
    _fake_tool(bin_dir, "nvidia-smi", f"echo '{H200}'\necho '{H200}'")
    env = capture_environment(engine="vllm")
    assert env["gpu_query"] == "ok"
    assert [g["name"] for g in env["gpus"]] == ["NVIDIA H200", "NVIDIA H200"]


def test_a_failing_nvidia_smi_records_its_error_line(bin_dir: Path) -> None:
    _fake_tool(bin_dir, "nvidia-smi", "echo 'NVIDIA-SMI has failed because it could not communicate' >&2\nexit 9")
    env = capture_environment(engine="vllm")
    assert env["gpus"] == []
    assert env["gpu_query"] == "nvidia-smi exited 9: NVIDIA-SMI has failed because it could not communicate"


def test_the_record_is_json_ready_and_complete(tmp_path: Path) -> None:
    env = capture_environment(engine="vllm", engine_info={"server_version": "0.32.0"},
                              engine_options={"tp": 1, "profile": tmp_path / "p.json"})
    assert json.loads(json.dumps(env)) == env
    assert env["engine"] == {"name": "vllm", "options": {"tp": 1, "profile": str(tmp_path / "p.json")},
                             "info": {"server_version": "0.32.0"}}
    assert env["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert env["host"]["logical_cores"] == os.cpu_count()
    assert set(env["packages"]) >= {"vllm", "torch", "ray", "transformers"}
    assert env["model"] is None


def test_git_state_inside_and_outside_a_repository(tmp_path: Path) -> None:
    state = git_state()
    if state["sha"] != "unknown":  # a source checkout (not an installed wheel)
        assert len(state["sha"]) == 40 and isinstance(state["dirty"], bool)
    assert git_state(tmp_path) == {"sha": "unknown", "dirty": None}


def test_model_files_are_sized_and_hashed(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "sub" / "weights.safetensors").write_bytes(b"\x00" * 1000)
    env = capture_environment(engine="vllm", model_path=model)
    assert env["model"]["files"] == [
        {"path": "config.json", "size_bytes": 2, "sha256": hashlib.sha256(b"{}").hexdigest()},
        {"path": "sub/weights.safetensors", "size_bytes": 1000, "sha256": hashlib.sha256(b"\x00" * 1000).hexdigest()},
    ]
    assert env["model"]["total_bytes"] == 1002 and env["model"]["hashed"] is True


def test_a_single_model_file_and_sizes_only(tmp_path: Path) -> None:
    weights = tmp_path / "tiny.gguf"
    weights.write_bytes(b"abc")
    env = capture_environment(engine="vllm", model_path=weights, hash_model_files=False)
    assert env["model"]["files"] == [{"path": "tiny.gguf", "size_bytes": 3}]
    assert env["model"]["hashed"] is False and "sizes only" in env["model"]["note"]


def test_a_symlinked_model_file_is_followed(tmp_path: Path) -> None:
    """A Hugging Face cache snapshot is links into blobs/: the record hashes the content."""
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "abc").write_bytes(b"w")
    (tmp_path / "snap").mkdir()
    os.symlink(tmp_path / "blobs" / "abc", tmp_path / "snap" / "model.safetensors")
    env = capture_environment(engine="vllm", model_path=tmp_path / "snap")
    assert env["model"]["files"] == [{"path": "model.safetensors", "size_bytes": 1,
                                      "sha256": hashlib.sha256(b"w").hexdigest()}]


def test_a_missing_model_path_is_one_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="model path .*nope: not found"):
        capture_environment(engine="vllm", model_path=tmp_path / "nope")


def test_capture_imports_no_torch_vllm_or_ray() -> None:
    code = ("import sys\nfrom slobench.qualify import environment, manifest, power\n"
            "environment.capture_environment(engine='sim')\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('vllm', 'torch', 'ray', 'transformers')"
            " or m.startswith('slobench.cli'))\nprint(bad)\nsys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stdout + r.stderr
