"""Trade an AWS IoT X.509 certificate for temporary AWS credentials that refresh themselves."""

from ._credentials import Credentials
from ._keys import Pkcs11Config

__all__ = ["Credentials", "Pkcs11Config", "__version__"]

__version__ = "2.0.0.dev0"
