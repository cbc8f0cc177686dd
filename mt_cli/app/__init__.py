"""Use cases, one module (or package) per command; they do not import each other."""
