"""Read a YAML file into a pydantic model, turning every problem into one `UserError` line.

Sweep grids and paper-experiment files share this; workload specs have a richer loader of their own
(`slobench.workloads.spec`: relative paths, "did you mean" hints).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from slobench.errors import UserError

M = TypeVar("M", bound=BaseModel)


def load_yaml_model(path: Path, model: type[M], *, hint: Callable[[dict[str, Any]], str | None] | None = None) -> M:
    """``model`` validated from the YAML at ``path``; missing file, bad YAML or a bad field → one line.

    ``hint`` turns pydantic's first error (its ``loc``, ``type``, ``msg``, ``input``) into the fix to append
    ("known fields: …"), so each file kind can say how to repair its own fields.
    """
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "file"
        fix = hint(dict(err)) if hint is not None else None
        raise UserError(f"{path}: {loc}: {err['msg']}" + (f" — {fix}" if fix else "")) from None
