"""`slobench calibrate --engine openai --url URL` (issue 11): what a client of an endpoint can see — zero-load TTFT
against prompt length, inter-token latency against concurrency — fitted, written as a client-visible profile that
says so, refused by the simulator in one line; against the mock server, whose fixed pace the fit must recover."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from slobench.cli import app
from slobench.errors import UserError
from slobench.perf.calibration import fit_client_visible, fit_line
from slobench.perf.profile_file import (
    CLIENT_VISIBLE_SOURCE,
    ClientVisibleSection,
    EnvironmentSection,
    LinearFit,
    ProfileFile,
    load_profile_file,
    model_from_file,
    slo_decode_step_s,
    write_profile_file,
)
from slobench.testing.mock_server import MockServer
from tests.run_helpers import one_error_line

runner = CliRunner()
TTFT_S, TPOT_S = 0.05, 0.02  # the mock server's fixed pace


def test_line_fit_recovers_intercept_and_slope() -> None:
    pts = [(p, 0.03 + 4e-5 * p) for p in (16, 64, 256, 1024) for _ in range(2)]
    f = fit_line(pts)
    assert f.intercept_s == pytest.approx(0.03) and f.slope_s == pytest.approx(4e-5) and f.r2 == pytest.approx(1.0)
    assert f.n == 8 and f.at(100) == pytest.approx(0.034)
    one = fit_line([(1, 0.02), (1, 0.04)])  # one distinct x: the median, no slope, nothing to judge
    assert one.intercept_s == pytest.approx(0.03) and one.slope_s == 0 and one.r2 is None
    falling = fit_line([(1, 0.05), (2, 0.04), (4, 0.03)])  # a latency cannot fall with load: slope clipped to 0
    assert falling.slope_s == 0.0
    with pytest.raises(UserError, match="nothing was measured"):
        fit_line([])


def _client_profile(itl_1: float = 0.02) -> ProfileFile:
    sec = fit_client_visible([(16, 0.05), (256, 0.051), (1024, 0.053)], [(1, itl_1), (2, itl_1), (4, itl_1 + 1e-3)])
    return ProfileFile(name="ep", client=sec, environment=EnvironmentSection(hardware="unknown", engine="openai",
                                                                              measured="client"))


def test_a_client_visible_profile_round_trips_and_the_simulator_refuses_it(tmp_path: Path) -> None:
    path = write_profile_file(_client_profile(), tmp_path / "ep.yaml")
    raw = yaml.safe_load(path.read_text())
    assert raw["client"]["source"] == CLIENT_VISIBLE_SOURCE and raw["environment"]["measured"] == "client"
    assert "latency" not in raw or raw["latency"] is None
    prof = load_profile_file(path)
    assert prof.client_visible and prof.client is not None and prof.client.itl.at(1) == pytest.approx(0.02, rel=0.05)
    with pytest.raises(UserError, match="cannot drive the simulator's per-iteration model") as exc:
        model_from_file(path)
    assert "\n" not in str(exc.value)
    # It still gives the decode step that SLOs are scaled by: the ITL at concurrency 1.
    assert slo_decode_step_s(prof) == pytest.approx(prof.client.itl.at(1))
    from slobench.cli.validate_cmd import slo_time_scale_of
    from slobench.perf.profiles import SLO_REFERENCE_PROFILE, decode_step_s, get_profile

    assert slo_time_scale_of(str(path)) == pytest.approx(prof.client.itl.at(1) /
                                                          decode_step_s(get_profile(SLO_REFERENCE_PROFILE)))


def test_a_profile_must_say_what_it_measured() -> None:
    env = EnvironmentSection(hardware="cpu", engine="openai", measured="client")
    with pytest.raises(ValueError, match="client section is missing"):
        ProfileFile(name="x", environment=env)
    with pytest.raises(ValueError, match="latency and kv_capacity_tokens: required in a profile measured from"):
        ProfileFile(name="x", environment=EnvironmentSection(hardware="cpu", engine="vllm"),
                    client=ClientVisibleSection(ttft=LinearFit(intercept_s=0.1, slope_s=0, n=1),
                                                itl=LinearFit(intercept_s=0.1, slope_s=0, n=1)))


@pytest.fixture
def mock():
    srv = MockServer(ttft_s=TTFT_S, tpot_s=TPOT_S).start()
    yield srv
    srv.stop()


def test_calibrate_against_the_mock_server_recovers_its_pace(mock: MockServer, tmp_path: Path) -> None:
    """The mock answers every prompt after 50 ms and then streams a token every 20 ms whatever the load: the fit
    must find TTFT ≈ 50 ms flat in prompt length and ITL ≈ 20 ms flat in concurrency."""
    out = tmp_path / "endpoint.yaml"
    r = runner.invoke(app, ["calibrate", "--engine", "openai", "--url", mock.url, "--prompt-lengths", "16,256,1024",
                            "--concurrency", "1,2,4", "--engine-arg", "vocab_size=1024", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "client-visible" in r.output and "cannot drive the" in r.output
    prof = load_profile_file(out)
    c = prof.client
    assert c is not None and c.source == CLIENT_VISIBLE_SOURCE and prof.environment.engine == "openai"
    assert len(c.ttft_points) == 6 and sorted({p for p, _ in c.ttft_points}) == [16, 256, 1024]  # each twice
    assert [n for n, _ in c.itl_points] == [1, 2, 4]
    # The server's 50 ms plus what the client pays around it (a new connection, the request body, the event loop
    # it shares with the mock here): 5–20 ms on this 2-core machine; none of it depends on the prompt length.
    for p in (16, 256, 1024):
        assert TTFT_S <= c.ttft.at(p) <= TTFT_S + 0.04, c
    assert c.ttft.at(1024) - c.ttft.at(16) < 0.03, c
    for n in (1, 2, 4):
        assert c.itl.at(n) == pytest.approx(TPOT_S, rel=0.15), c
    assert all(0.7 * TPOT_S < itl < 1.3 * TPOT_S for _, itl in c.itl_points)
    bodies = [b for b in mock.requests if b.get("max_tokens") == 1]
    assert len(bodies) == 7  # one warm-up + 3 lengths × 2, one token each
    assert mock.max_in_flight == 4  # the closed loop reached the highest concurrency, not more
    # The simulator refuses it, in one line.
    r = runner.invoke(app, ["run", "--profile", str(out), "-n", "5", "--out", str(tmp_path / "res")])
    assert r.exit_code == 2 and "cannot drive the simulator" in one_error_line(r.output)


def test_missing_or_unreachable_url_and_bad_grids_are_one_line() -> None:
    r = runner.invoke(app, ["calibrate", "--engine", "openai"])
    assert r.exit_code == 2 and "give --url" in one_error_line(r.output)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = runner.invoke(app, ["calibrate", "--engine", "openai", "--url", f"http://127.0.0.1:{port}/v1"])
    assert r.exit_code == 2 and "cannot reach the server" in one_error_line(r.output)
    r = runner.invoke(app, ["calibrate", "--engine", "openai", "--url", "http://127.0.0.1:9", "--concurrency", "0,2"])
    assert r.exit_code == 2 and "--concurrency '0,2'" in one_error_line(r.output)
    r = runner.invoke(app, ["calibrate", "--engine", "vllm", "--model", "x", "--prompt-lengths", "16"])
    assert r.exit_code == 2 and "only with --engine openai" in one_error_line(r.output)
