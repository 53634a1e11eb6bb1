"""Builds the _rsem extension: compiles librsem.a with cargo from the checkout
this package sits in, and links it statically into the module, so that
`import rsem` needs no shared library and no environment variables."""
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class CargoBuildExt(build_ext):
    def run(self):
        cargo = shutil.which("cargo") or os.path.expanduser("~/.cargo/bin/cargo")
        if not os.path.exists(cargo):
            sys.exit("rsem: building the extension needs cargo (https://rustup.rs)")
        target_dir = os.path.join(ROOT, "target", "python-build")
        subprocess.check_call(
            [cargo, "build", "--release", "--lib", "--target-dir", target_dir],
            cwd=ROOT,
        )
        lib = os.path.join(target_dir, "release", "librsem.a")
        for ext in self.extensions:
            ext.extra_objects = [lib]
        super().run()


setup(
    ext_modules=[
        Extension(
            "rsem._rsem",
            sources=["src/rsem/_rsem.c"],
            include_dirs=[os.path.join(ROOT, "include")],
            libraries=["pthread", "dl", "m", "rt", "util"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers"],
        )
    ],
    cmdclass={"build_ext": CargoBuildExt},
)
