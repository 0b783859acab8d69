"""Builds the Cython modules in place: ``python setup.py build_ext --inplace``.

The Rust extension (stalwart._native, in ext/) is built by maturin, which is also the
PEP 517 backend in pyproject.toml; this file only compiles every ``stalwart/**/*.pyx``.
"""
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

ROOT = Path(__file__).resolve().parent


def _extensions():
    exts = []
    for pyx in sorted((ROOT / "stalwart").rglob("*.pyx")):
        rel = pyx.relative_to(ROOT)
        name = ".".join(rel.with_suffix("").parts)
        exts.append(Extension(name, [str(rel)], extra_compile_args=["-O2"]))
    return exts


setup(
    name="stalwart-py-cython",
    packages=[],
    ext_modules=cythonize(
        _extensions(),
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
        quiet=True,
    ),
)
