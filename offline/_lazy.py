"""Names of a package imported on first use (PEP 562), so that importing a light submodule or
the CLI does not pull in numpy, numba and the kernels."""

from __future__ import annotations

import importlib


def lazy_names(package: str, names: dict, namespace: dict):
    """``(__getattr__, __dir__)`` for ``package`` whose ``names`` (name -> module) are imported on
    first use and cached in ``namespace`` (the package's ``globals()``). Any other attribute is
    tried as a submodule (``import pkg; pkg.<submodule>.f()`` keeps working)."""

    def __getattr__(name: str):
        module = names.get(name)
        if module is None:
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as err:
                if err.name != f"{package}.{name}":
                    raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
