"""A kinefuse plugin whose hook is misspelled (register_sorces): kinefuse must quarantine it, naming it."""

from kinefuse import hookimpl


@hookimpl
def register_sorces():
    return []
