"""Cetate: an NGSI-LD context broker (ETSI GS CIM 009 v1.9)."""

__version__ = "0.1.0"
