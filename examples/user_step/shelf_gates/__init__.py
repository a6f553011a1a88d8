"""Quality gates of the shelf-detector project: user steps for cvpipe's training pipeline."""
