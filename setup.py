"""Build hook: ship the top-level ``workloads/*.yaml`` specs inside the package.

The product fixes the layout: workload specs live in the repository's top-level ``workloads/``
folder, the one place users read and edit them. A wheel, however, only carries the package, so a
non-editable install would ship without specs. This hook copies the YAML files into the *build*
copy of the package (``slobench/workloads/specs/``) and nowhere else: the source tree never holds
a second copy that could drift. ``slobench.workloads.spec`` reads the repository folder in a
checkout (editable install) and the packaged copy otherwise. Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SPEC_SRC = ROOT / "workloads"
SPEC_DST = Path("slobench", "workloads", "specs")  # relative to build_lib; spec.py's PACKAGED_SPEC_DIR


class BuildPyWithSpecs(build_py):
    """`build_py` that also copies ``workloads/*.yaml`` into the built package."""

    def _spec_files(self) -> list[Path]:
        return sorted(SPEC_SRC.glob("*.yaml"))

    def _copies(self) -> bool:
        # Editable installs import the checkout, which reads workloads/ directly: a copy there
        # would only be a stale duplicate.
        return not getattr(self, "editable_mode", False)

    def run(self) -> None:
        super().run()
        if not self._copies():
            return
        files = self._spec_files()
        if not files:
            raise RuntimeError(f"no workload specs in {SPEC_SRC}; the sdist must include workloads/*.yaml")
        dst = Path(self.build_lib) / SPEC_DST
        dst.mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy2(f, dst / f.name)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if self._copies():
            outputs += [str(Path(self.build_lib) / SPEC_DST / f.name) for f in self._spec_files()]
        return outputs


setup(cmdclass={"build_py": BuildPyWithSpecs})
