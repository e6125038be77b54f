"""The 1.x contract, checked from the outside, in the style of 1.x's own suite."""
