"""The array module the min-max engine runs on: CuPy when a GPU is really usable, else NumPy.

`cupy-cuda12x` imports fine on a machine without a GPU and only fails at the first allocation
(`CUDARuntimeError`), so a GPU is detected by TRYING a small allocation and a kernel, never by the
import alone. The answer is cached per process.

    backend = get_backend("auto")     # cupy if usable, else numpy
    backend = get_backend("numpy")    # always numpy
    backend = get_backend("cupy")     # cupy, or SolverUnavailable saying why not
    xp = backend.xp                   # the array module, used as `xp.maximum(...)` etc.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from optkit.errors import InputError, SolverUnavailable

BACKENDS = ("auto", "numpy", "cupy")


@dataclass(frozen=True)
class Backend:
    """An array module (`xp`), its sparse module (`sparse`, may be None) and host transfers."""

    name: str  # "numpy" or "cupy"
    xp: Any
    sparse: Any  # scipy.sparse or cupyx.scipy.sparse (None if unavailable)
    device: str  # words, e.g. "CPU (NumPy)" or "NVIDIA H100 (CuPy 13.x)"

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        return self.xp.asarray(a, dtype=dtype)

    def to_host(self, a: Any) -> np.ndarray:
        """A NumPy array (or a Python scalar stays a scalar)."""
        if self.name == "cupy" and hasattr(a, "get"):
            return a.get()
        return np.asarray(a)

    def scalar(self, a: Any) -> float:
        return float(self.to_host(a))


def _numpy_backend() -> Backend:
    import scipy.sparse

    return Backend("numpy", np, scipy.sparse, "CPU (NumPy)")


@lru_cache(maxsize=1)
def cupy_status() -> tuple[Backend | None, str]:
    """(the CuPy backend, "") if CuPy is installed AND a GPU accepts an allocation, else (None, why)."""
    try:
        import cupy
    except ImportError as e:
        return (
            None,
            f"CuPy is not installed ({e}); install 'cupy-cuda12x' on a machine with an NVIDIA GPU",
        )
    except Exception as e:  # noqa: BLE001 - a broken install must not break discovery
        return None, f"CuPy failed to import: {type(e).__name__}: {e}"
    try:
        a = cupy.arange(8, dtype=cupy.float64)
        total = float((a * 2.0).sum().get())  # allocation + kernel + copy back
        cupy.cuda.Stream.null.synchronize()
        if total != 56.0:
            return None, f"CuPy computed a wrong test sum ({total})"
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        gpu = props.get("name", b"GPU")
        gpu = gpu.decode() if isinstance(gpu, bytes) else str(gpu)
    except Exception as e:  # noqa: BLE001 - CUDARuntimeError, CompileException, no driver...
        return None, f"CuPy is installed but no usable GPU was found ({type(e).__name__}: {e})"
    try:
        import cupyx.scipy.sparse as cusparse
    except Exception:  # noqa: BLE001 - sparse support is optional: dense matrices still work
        cusparse = None
    return Backend("cupy", cupy, cusparse, f"{gpu} (CuPy {cupy.__version__})"), ""


def get_backend(name: str = "auto") -> Backend:
    """The backend called `name` (auto|numpy|cupy). A requested but unusable cupy is an error."""
    if name not in BACKENDS:
        raise InputError(
            f"parameter 'backend': expected one of {', '.join(BACKENDS)}, got {name!r}"
        )
    if name == "numpy":
        return _numpy_backend()
    backend, why = cupy_status()
    if backend is not None:
        return backend
    if name == "cupy":
        raise SolverUnavailable(
            f"backend 'cupy' was requested but cannot run here: {why} "
            f"(use --param backend=numpy or backend=auto)"
        )
    return _numpy_backend()
