"""The version of Mist, as the setup status and the daemon report it."""

__version__ = "0.1.0"
