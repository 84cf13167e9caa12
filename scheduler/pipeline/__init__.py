"""The pipeline: the stage machine, leads and their contact points, identity, sandbox leads."""
