"""The `fs` command line: composes sources, encoders, the store and solvers; holds no math."""
