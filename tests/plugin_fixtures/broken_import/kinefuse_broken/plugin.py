"""A kinefuse plugin that fails at import: kinefuse must quarantine it and run on."""

raise RuntimeError("this plugin is broken on purpose")
