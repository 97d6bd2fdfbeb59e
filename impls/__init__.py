"""One sub-package per framework, each building the spec's variants idiomatically.

Every sub-package has the same three files, so they read side by side:

- ``model.py``   the model, built from a ``Variant`` (the file a porter reads);
- ``convert.py`` canonical weights in and out of that model;
- ``backend.py`` a ``Backend`` (see ``impls.base``) the crosscheck drives.
"""
