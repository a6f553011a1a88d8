"""The shelf-detector project's own model, trained, evaluated and served by cvpipe."""
