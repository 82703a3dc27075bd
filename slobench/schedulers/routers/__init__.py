"""Pure routing policies across replicas (the simulator's replica loop calls them)."""
