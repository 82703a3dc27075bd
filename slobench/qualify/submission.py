"""One qualification from start to sealed folder: what ``slobench qualify --suite S --engine E`` does.

The folder (``<out>/<stamp>-qualify-<suite>``) holds, in the order written:
- ``suite.yaml``: the exact bytes of the suite file that ran (its sha256 is in ``qualification.json``);
- ``environment.json``: the machine, the engine and the model files' hashes (`slobench.qualify.environment`);
- ``scenarios/<name>/capacity/search/`` (the capacity search's probes.csv, summary.json),
  ``scenarios/<name>/capacity/official/`` and ``scenarios/<name>/concurrency/c<N>/`` (each judged run's
  requests and summary.json);
- ``engine/``: a launched server's log and the capacity probes' streamed records (real engines);
- ``qualification.json``: every verdict, point, reason code and bound; ``report.html`` drawn from it;
- ``MANIFEST.sha256`` last: the sha256 of every file above; its root digest is what the submitter publishes.

Ctrl-C or a crash keeps every finished run (each run writes its own folder as it ends) and writes no manifest:
a folder without ``MANIFEST.sha256`` is not a result.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slobench.capacity.execute import SearchObserver
from slobench.qualify.environment import capture_environment
from slobench.qualify.manifest import write_manifest
from slobench.qualify.runner import QUALIFICATION_FILE, SCHEMA_VERSION, ScenarioResult, SuiteRunner, Target
from slobench.qualify.suite import Suite, suite_digest
from slobench.report.results import new_run_dir, write_json


@dataclass
class Qualification:
    """What the command shows: the folder, the verdict and the root digest to publish."""

    out_dir: Path
    verdict: str  # VALID | INVALID
    detail: str
    scenarios: list[ScenarioResult] = field(default_factory=list)
    root_digest: str = ""
    notices: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def verdict(results: list[ScenarioResult], *, conforming: bool) -> tuple[str, str]:
    """VALID only when every scenario is VALID and the suite ran as published (no override)."""
    bad = [r.name for r in results if not r.valid]
    if bad:
        return "INVALID", f"{len(bad)} of {len(results)} scenarios INVALID: {', '.join(bad)}"
    if not conforming:
        return "INVALID", "every scenario VALID, but the suite was run with an override (not the published suite)"
    return "VALID", f"all {len(results)} scenarios VALID"


def run_qualification(suite: Suite, suite_path: Path, target: Target, out_root: Path, *,
                      say: Callable[[str], None] | None = None, observer: SearchObserver | None = None,
                      slo_scale: float | None = None, model_path: Path | None = None,
                      hash_model_files: bool = True) -> Qualification:
    """Run ``suite`` on ``target`` into a fresh folder under ``out_root``; return the sealed outcome."""
    t0 = time.perf_counter()
    out_dir = new_run_dir(f"qualify-{suite.label}", root=out_root)
    if say is not None:
        say(f"results: {out_dir} (sealed with MANIFEST.sha256 when the suite ends; Ctrl-C keeps finished runs, "
            "unsealed)")
    shutil.copyfile(suite_path, out_dir / "suite.yaml")
    env = capture_environment(engine=target.engine, engine_options=target.engine_options, model_path=model_path,
                              hash_model_files=hash_model_files)
    write_json(out_dir / "environment.json", env)
    if target.gpus is None and target.engine != "sim" and env.get("gpus"):
        target = replace(target, gpus=len(env["gpus"]))  # tokens/s per GPU: the GPUs this machine shows
    runner = SuiteRunner(suite, target, out_dir, say=say, observer=observer, slo_scale=slo_scale)
    from slobench.cluster.run import engine_session

    # Servers started here log under engine/ and stop when the block ends, before the folder is sealed (a server
    # still writing its log would change a sealed file); a test suite's shared servers log elsewhere.
    with engine_session(out_dir / "engine"):
        results = runner.run()
    conforming = slo_scale is None
    v, detail = verdict(results, conforming=conforming)
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": list(sys.argv), "engine": target.engine,
        "qualified": {k: v for k, v in asdict(target).items() if v not in (None, {})},  # what --engine/--model … named
        "suite": {"name": suite.name, "version": suite.version, "sha256": suite_digest(suite_path),
                  "file": "suite.yaml"},
        "target": suite.rules.target_attainment, "gpus_per_point": target.gpus or 1,
        "rules": suite.rules.model_dump(mode="json"),
        "overrides": {} if conforming else {"slo_scale": slo_scale},
        "verdict": v, "verdict_detail": detail, "scenarios": [r.to_dict() for r in results], "environment": env,
    }
    write_json(out_dir / QUALIFICATION_FILE, doc)
    from slobench.qualify.report import render_report

    _, notices = render_report(out_dir)
    manifest = write_manifest(out_dir)
    return Qualification(out_dir, v, detail, results, manifest.root_digest, notices, time.perf_counter() - t0)
