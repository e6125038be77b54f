"""``python -m awsiot_credentialhelper.cli``: the same as the ``awsiot-credentialhelper`` script."""

from __future__ import annotations

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
