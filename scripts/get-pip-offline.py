"""Stand-in for the get-pip bootstrap script that ansible-test downloads from a host this
machine cannot reach: pip comes from the Python's own ensurepip, then the requested pip
version from the package index. ansible-test runs this with get-pip's arguments."""
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}
args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"] + args)
