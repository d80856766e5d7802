"""Offline stand-in for the get-pip.py script that ansible-test downloads.

ansible-test bootstraps pip into the virtualenvs of its sanity tests with a
script fetched from a host this machine (and CI) cannot reach. It looks for a
cached copy first; scripts/test puts this file there. Same interface: the
arguments are pip install options and packages.
"""
from __future__ import annotations

import subprocess
import sys

GET_PIP_ONLY_OPTIONS = {"--no-setuptools", "--no-wheel"}

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
pip_args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
subprocess.check_call([sys.executable, "-m", "pip", "install", *pip_args])
