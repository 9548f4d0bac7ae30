from setuptools import setup

setup(cffi_modules=["spargio/native/_build.py:ffibuilder"])
