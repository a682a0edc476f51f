"""Mist's terminal app: a Textual front end that talks to a daemon (or the embedded core) only through
``mist_core.api.MistAPI``."""
