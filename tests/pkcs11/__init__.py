"""Tests of PKCS#11 key sources: URIs, and real SoftHSM2 tokens through awscrt."""
