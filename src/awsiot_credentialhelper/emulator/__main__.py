"""``python -m awsiot_credentialhelper.emulator``, same as ``awsiot-credentialhelper emulator``."""

from __future__ import annotations

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
