"""kinefuse's built-in feature plugins, one package each; every package's ``plugin`` module holds its hooks
and is declared as a ``kinefuse.plugins`` entry point in pyproject.toml, as a third-party plugin's would be."""
