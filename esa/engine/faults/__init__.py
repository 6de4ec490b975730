"""Fault injection: random bit errors in a model's stored weights, with an exempt (ECC-protected) set, and
progressive bit-flip attacks against the loss with a random-flip control."""
