"""Settings, one module per environment: ``dev`` (the demo), ``test`` and ``production``."""
