"""Puts a simulated card in a real PC/SC reader (vsmartcard's vpcd driver for pcscd)."""

from .vpcd import VpcdBridge

__all__ = ["VpcdBridge"]
