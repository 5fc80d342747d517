"""Builds the Cython kernels in ext/ as kinefuse._ext.*; everything else is declared in pyproject.toml."""

import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

# Floating-point contraction (FMA) would make the compiled kernels differ in the last bit from their
# pure-Python twins, which the equivalence tests compare exactly.
_FP_FLAGS = [] if sys.platform == "win32" else ["-O3", "-ffp-contract=off", "-fno-math-errno"]

_KERNELS = ["ahrs", "clock_map", "keypoint_kalman", "one_euro", "triangulation"]

extensions = [
    Extension(
        f"kinefuse._ext.{name}",
        [f"ext/{name}.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=_FP_FLAGS,
    )
    for name in _KERNELS
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    )
)
