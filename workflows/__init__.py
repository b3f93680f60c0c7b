"""The layer above the store and the solvers: reads a feature store (plus the names given on the
command line or in a notebook) and hands the solvers the arrays they take. ``featurestore`` never
imports ``solvers`` and ``solvers`` never imports ``featurestore``; only this package (and ``cli``,
which composes it) knows both."""
