"""Grants and the consent records that keep every change to them."""
