"""The wheel's one build step beyond pyproject.toml: the run-time data goes into the package.

build_py copies what the tools read at run time (paths.PACKAGE_DATA: firmware/, board_configs/,
the example models, the virtual board's shims, the conformance models) into
tinysense/_data/ of the build, in the checkout's layout, so an installed tinysense reads it
there (tinysense/paths.py decides). An editable install (`make setup`) copies nothing: it
reads the checkout itself. Everything else is in pyproject.toml.
"""

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _paths():
    """host/tinysense/paths.py on its own (the package's other modules need its dependencies,
    which a build environment need not have)."""
    spec = importlib.util.spec_from_file_location("_tinysense_paths",
                                                  ROOT / "host" / "tinysense" / "paths.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def data_files() -> list[Path]:
    """The files paths.PACKAGE_DATA names, relative to ROOT (no __pycache__, no dot files)."""
    files = set()
    for directory, globs in _paths().PACKAGE_DATA:
        found = {f.relative_to(ROOT) for g in globs for f in (ROOT / directory).glob(g)
                 if f.is_file()}
        found = {f for f in found if not any(p == "__pycache__" or p.startswith(".")
                                             for p in f.parts)}
        if not found:
            raise SystemExit(f"setup.py: no run-time data in {ROOT / directory} "
                             f"(globs {', '.join(globs)}): build from a full checkout or sdist")
        files |= found
    return sorted(files)


class build_py_with_data(build_py):
    """build_py, then tinysense/_data/ (unless editable)."""

    def _data_dir(self) -> Path:
        return Path(self.build_lib) / "tinysense" / _paths().DATA_DIRNAME

    def run(self):
        if not self.editable_mode:
            # a fresh copy each build: a module or data file deleted from the tree never ships
            shutil.rmtree(Path(self.build_lib) / "tinysense", ignore_errors=True)
        super().run()
        if self.editable_mode:
            return
        dest = self._data_dir()
        for rel in data_files():
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / rel, out)

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if not self.editable_mode:
            outputs += [str(self._data_dir() / rel) for rel in data_files()]
        return outputs


setup(cmdclass={"build_py": build_py_with_data})
