"""Register maps shipped with gridedge, one YAML file per meter model (package data, no code)."""
