"""Fault injection: random bit errors in a model's stored weights, with an exempt (ECC-protected) set."""
