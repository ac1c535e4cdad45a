"""The search kernel (``src/hanet/index/native/dots.c``) is compiled here, when the package is
installed, into ``hanet/index/native/_dots*.so``; it is loaded with ctypes (no Python API). It is
optional: where no C compiler is present or the machine is not x86-64, the install goes on and
search computes the same products with torch. Nothing is compiled when hanet runs."""

import platform

from setuptools import Extension, setup

KERNEL = Extension("hanet.index.native._dots", ["src/hanet/index/native/dots.c"],
                   extra_compile_args=["-O3", "-std=c99"], optional=True)

setup(ext_modules=[KERNEL] if platform.machine().lower() in ("x86_64", "amd64") else [])
