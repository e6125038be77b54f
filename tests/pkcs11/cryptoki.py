"""A few raw PKCS#11 calls (ctypes) to look at a token's state from inside the test process.

awscrt loads the same module into the same process, so the module's state is shared: a login
awscrt still holds shows up here as ``CKR_USER_ALREADY_LOGGED_IN``. Only :meth:`finalize` calls
``C_Finalize``, which would pull the module out from under a live awscrt context.
"""

from __future__ import annotations

import ctypes

CKR_OK = 0x0
CKR_USER_ALREADY_LOGGED_IN = 0x100
CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191
CKF_SERIAL_SESSION = 0x4
CKU_USER = 1
CKF_USER_PIN_COUNT_LOW = 0x10000
CKF_USER_PIN_FINAL_TRY = 0x20000
CKF_USER_PIN_LOCKED = 0x40000
_FLAGS_OFFSET = 32 + 32 + 16 + 16  # CK_TOKEN_INFO: label, manufacturerID, model, serialNumber


class Cryptoki:
    """The handful of Cryptoki functions these tests need, on an already loaded module."""

    def __init__(self, module: str) -> None:
        self._lib = ctypes.CDLL(module)
        ulong = ctypes.c_ulong
        self._lib.C_Initialize.argtypes = [ctypes.c_void_p]
        self._lib.C_OpenSession.argtypes = [
            ulong, ulong, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ulong)
        ]  # fmt: skip
        self._lib.C_Login.argtypes = [ulong, ulong, ctypes.c_char_p, ulong]
        self._lib.C_Logout.argtypes = [ulong]
        self._lib.C_CloseSession.argtypes = [ulong]
        self._lib.C_GetTokenInfo.argtypes = [ulong, ctypes.c_void_p]
        for function in ("C_Initialize", "C_OpenSession", "C_Login", "C_Logout"):
            getattr(self._lib, function).restype = ulong
        self._lib.C_CloseSession.restype = ulong
        self._lib.C_GetTokenInfo.restype = ulong
        result = self._lib.C_Initialize(None)
        if result not in (CKR_OK, CKR_CRYPTOKI_ALREADY_INITIALIZED):
            raise RuntimeError(f"C_Initialize returned {result:#x}")

    def finalize(self) -> None:
        """``C_Finalize``: only once no awscrt context uses the module any more."""
        self._lib.C_Finalize.argtypes = [ctypes.c_void_p]
        self._lib.C_Finalize.restype = ctypes.c_ulong
        self._lib.C_Finalize(None)

    def login_result(self, slot: int, pin: str) -> int:
        """Open a session and log in; return C_Login's result, leaving no login or session."""
        session = ctypes.c_ulong()
        result = self._lib.C_OpenSession(slot, CKF_SERIAL_SESSION, None, None, session)
        if result != CKR_OK:
            raise RuntimeError(f"C_OpenSession returned {result:#x}")
        try:
            secret = pin.encode()
            login = int(self._lib.C_Login(session, CKU_USER, secret, len(secret)))
            if login == CKR_OK:
                self._lib.C_Logout(session)
            return login
        finally:
            self._lib.C_CloseSession(session)

    def token_flags(self, slot: int) -> int:
        info = ctypes.create_string_buffer(512)  # CK_TOKEN_INFO is 208 bytes on LP64
        result = self._lib.C_GetTokenInfo(slot, info)
        if result != CKR_OK:
            raise RuntimeError(f"C_GetTokenInfo returned {result:#x}")
        return ctypes.c_ulong.from_buffer(info, _FLAGS_OFFSET).value
