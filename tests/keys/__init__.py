"""Tests of PEM private keys: encrypted keys and password sources."""
