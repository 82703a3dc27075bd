"""`slobench doctor`: which engines can run here, and if not, why and how to fix it.

Checks without starting anything heavy: the simulator (always), vLLM (installed? which build —
CUDA or CPU? a version the scheduler adapter supports? a GPU visible? is ``transformers`` there
for the tiny test model?), and the OpenAI client (httpx; optionally a ``--url`` to probe).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()


@dataclass
class EngineCheck:
    engine: str
    usable: bool
    detail: str


def check_engines(url: str | None = None) -> list[EngineCheck]:
    """One row per engine: usable here or not, and why."""
    from slobench.engines.vllm.support import SUPPORTED_TEXT, vllm_info

    rows = [EngineCheck("sim", True, "built in: discrete-event simulator with roofline latency models")]
    info = vllm_info()
    problem = info.problem()
    if problem:
        rows.append(EngineCheck("vllm", False, problem))
    else:
        where = ("CUDA build, GPU visible" if info.gpu_visible else "CUDA build, but no GPU is visible "
                 "(nvidia-smi / CUDA_VISIBLE_DEVICES)") if info.build == "cuda" else "CPU build (tests, small models)"
        extra = "" if importlib.util.find_spec("transformers") else "; transformers missing (needed by "
        extra += "" if not extra else "scripts/make_tiny_model.py)"
        usable = info.build == "cpu" or info.gpu_visible
        rows.append(EngineCheck("vllm", usable, f"{info.distribution} {info.version} ({where}); adapter supports "
                                f"vllm {SUPPORTED_TEXT}{extra}"))
    if importlib.util.find_spec("httpx") is None:
        rows.append(EngineCheck("openai", False, "httpx is not installed: pip install -e . (base install)"))
    elif url is None:
        rows.append(EngineCheck("openai", True, "client ready; give --url to check a server"))
    else:
        rows.append(_probe_url(url))
    return rows


def _probe_url(url: str) -> EngineCheck:
    import httpx

    from slobench.engines.openai.engine import normalize_url
    from slobench.errors import UserError

    try:
        base = normalize_url(url)
        resp = httpx.get(base + "/models", timeout=5.0)
    except UserError as exc:
        return EngineCheck("openai", False, str(exc))
    except httpx.HTTPError as exc:
        return EngineCheck("openai", False, f"{url}: cannot connect ({type(exc).__name__})")
    if resp.status_code in (401, 403):
        return EngineCheck("openai", True, f"{base} answers but wants an API key (--engine-arg api_key_env=NAME)")
    return EngineCheck("openai", resp.status_code == 200, f"{base}/models → HTTP {resp.status_code}")


def doctor_cmd(
    url: Annotated[str | None, typer.Option(help="Also check this OpenAI-compatible server.")] = None,
) -> None:
    """Which engines (sim, vllm, openai) are usable here, and why not.

    Example: slobench doctor --url http://127.0.0.1:8000/v1
    """
    t = Table(title="slobench engines", header_style="bold")
    t.add_column("engine")
    t.add_column("usable")
    t.add_column("why")
    for row in check_engines(url):
        t.add_row(row.engine, "[green]yes[/]" if row.usable else "[red]no[/]", escape(row.detail))
    console.print(t)


def register(app: typer.Typer) -> None:
    """Attach `doctor` to the root app."""
    app.command("doctor")(doctor_cmd)
