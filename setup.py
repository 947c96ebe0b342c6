"""Builds the C++ extension sideman.plugin_host._bridge (the DAW bridge core, shim/core).

Project metadata lives in pyproject.toml; this file only declares the extension, so that
`pip install -e .` (or any wheel build) compiles it with pybind11's helpers.
"""
from glob import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

# Compile the few translation units in parallel (at most two jobs: build machines are shared).
ParallelCompile("SIDEMAN_BUILD_JOBS", default=2).install()

bridge = Pybind11Extension(
    "sideman.plugin_host._bridge",
    sources=["shim/core/python/bindings.cpp", *sorted(glob("shim/core/src/*.cpp"))],
    include_dirs=["shim/core/include"],
    depends=sorted(glob("shim/core/include/sideman_bridge/*.h")),
    cxx_std=17,
    extra_compile_args=["-O2"],
)

setup(ext_modules=[bridge], cmdclass={"build_ext": build_ext})
