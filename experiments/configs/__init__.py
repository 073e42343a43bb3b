"""One module per experiment: ``get_config(arg=None, smoke=False) -> ConfigDict`` and optional
``ARGS`` (see `jgen.config`). Shipped with the wheel, so ``jgen list`` and ``jgen train`` work
after a plain ``pip install``. `experiments.configs.common` holds what configs share (the smoke
variant's settings); modules named ``common`` or starting with ``_`` are not experiments."""
