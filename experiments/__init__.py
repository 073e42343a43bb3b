"""jgen's experiments: `experiments.configs` holds one config module per experiment."""
