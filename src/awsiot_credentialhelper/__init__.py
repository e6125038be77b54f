"""Trade an AWS IoT X.509 certificate for temporary AWS credentials that refresh themselves."""

from ._credentials import Credentials
from ._keys import Pkcs11Config
from ._provider import IotCredentialProvider
from ._version import __version__

__all__ = ["Credentials", "IotCredentialProvider", "Pkcs11Config", "__version__"]
