"""qtap-fluent: capture every HTTP transaction on a Linux host and route it through Fluent Bit."""

__version__ = "0.1.0"

__all__ = ["__version__"]
