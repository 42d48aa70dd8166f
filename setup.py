"""The one thing pyproject.toml cannot say: the optional C accelerator of the replay fold.

`optional=True`: where no C compiler is at hand the install still succeeds, and
journey runs the pure Python fold (the reference) instead; `journey replay`
is slower, nothing else changes.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "projections._fold",
            ["projections/_fold.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
        )
    ]
)
