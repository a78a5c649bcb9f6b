"""Offline stand-in for the get-pip.py bootstrap script that ansible-test downloads.

ansible-test creates every sanity test's virtual environment without pip, then runs a get-pip.py
fetched from its own file server, which is out of reach here. tests/sanity/run.sh copies this file to
ansible-test's cache (~/.ansible/test/cache/get_pip_<version>.py) instead: it installs the pip that
CPython bundles (ensurepip) and then the requested packages (pip==<version>) from the package index.
"""

import subprocess
import sys

# get-pip.py's own options; everything else is handed to `pip install`.
GET_PIP_OPTIONS = {"--no-setuptools", "--no-wheel"}


def main() -> None:
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_OPTIONS]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *args])


if __name__ == "__main__":
    main()
